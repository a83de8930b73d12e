// The machine code NVIDIA's Vulkan driver made of our shaders, from its shader disk cache: what the
// tensor-core GEMM's k loop really issues (LDSM, HMMA, LDG, STS, BAR) and how many registers and
// instructions it takes. On the GPU machine, run a bench with the driver's cache in a folder:
//   __GL_SHADER_DISK_CACHE=1 __GL_SHADER_DISK_CACHE_PATH=$OUT/glc __GL_SHADER_DISK_CACHE_SKIP_CLEANUP=1 \
//     bash .gpu/run.sh node dist-bench/bench.js --only ablate --ablate dense-f16
// then here:   node tools/bench/sass.mjs GLC_DIR OUT_DIR [--disasm]
// Each compiled pipeline becomes OUT_DIR/code_N.bin (raw SM90 instructions) with a count of its memory,
// tensor and barrier instructions; --disasm runs nvdisasm on them. Entries are zstd frames, read with
// the `zstd` program (here: tools/setup-test-env.sh installs it); nvdisasm is on the GPU machine
// (/usr/local/cuda/bin), so session 21 split the cache here and carried code_N.bin back to run
// `nvdisasm -b SM90 code_N.bin` there. The driver caches every pipeline the process compiles: time
// only the variants to read, and tell them apart by their counts (HMMA: 64 a k step of 256x128-k32).
// The format is the driver's, not documented: what is read here (bench/tensor-core-notes.md, session 21)
// is checked on every entry, and an entry that does not match is reported and skipped.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);
const UCODE_MAGIC = 'NVDANVVMNVuc';
/** SM90 opcodes (the low 12 bits of an instruction's first 8 bytes), checked against nvdisasm's listing. */
export const OPCODES = { 0x23c: 'HMMA', 0x83b: 'LDSM', 0x984: 'LDS', 0x388: 'STS', 0x981: 'LDG', 0xb1d: 'BAR', 0x947: 'BRA', 0x94d: 'EXIT' };

/** The cache file's compressed entries: a zstd frame preceded by its compressed and plain sizes (u32 each). */
export function cacheEntries(file) {
  const entries = [];
  for (let o = file.indexOf(ZSTD_MAGIC, 8); o !== -1; o = file.indexOf(ZSTD_MAGIC, o + 4)) {
    const csize = file.readUInt32LE(o - 8);
    const usize = file.readUInt32LE(o - 4);
    if (csize > 4 && o + csize <= file.length + 8 && usize >= csize / 64 && usize < 1 << 28) entries.push({ offset: o, csize, usize });
  }
  return entries;
}

/** An entry's plain bytes. zstd stops at the frame's end and complains about what follows it: the
 * output's length is what says whether the frame was whole. */
export function decompress(file, entry) {
  const r = spawnSync('zstd', ['-d', '-c'], { input: file.subarray(entry.offset), maxBuffer: 1 << 28 });
  if (r.error) throw new Error(`sass: the zstd program is needed to read the driver's cache (${r.error.message})`);
  if (r.stdout.length !== entry.usize) throw new Error(`sass: the entry at ${entry.offset} gave ${r.stdout.length} bytes, its header says ${entry.usize}`);
  return r.stdout;
}

/** The instructions of a compiled pipeline (a "NVuc" blob): from the header's code offset (+24) to
 * the last EXIT within its code size, and the pipeline's count of the opcodes in OPCODES. */
export function codeOf(blob) {
  if (blob.length < 64 || blob.toString('latin1', 0, 12) !== UCODE_MAGIC) throw new Error(`sass: not a compiled pipeline (no ${UCODE_MAGIC} header)`);
  const size = blob.readUInt32LE(12 + 5 * 4);
  const start = blob.readUInt32LE(12 + 9 * 4) + 24;
  const limit = Math.min(blob.length, start + size);
  let exit = -1;
  for (let o = start; o + 16 <= limit; o += 16) if ((blob.readUInt32LE(o) & 0xfff) === 0x94d) exit = o;
  if (exit < 0) throw new Error(`sass: no EXIT in the ${size} bytes of code at ${start}`);
  const code = blob.subarray(start, exit + 16);
  const counts = Object.fromEntries(Object.values(OPCODES).map((n) => [n, 0]));
  for (let o = 0; o < code.length; o += 16) {
    const name = OPCODES[code.readUInt32LE(o) & 0xfff];
    if (name) counts[name]++;
  }
  return { code, instructions: code.length / 16, counts };
}

function main([dir, out, ...flags]) {
  if (!dir || !out) throw new Error('usage: node tools/bench/sass.mjs GLC_DIR_OR_FILE OUT_DIR [--disasm]');
  const files = statSync(dir).isDirectory() ? readdirSync(dir, { recursive: true }).map((f) => join(dir, f)).filter((f) => f.endsWith('.bin')) : [dir];
  if (files.length === 0) throw new Error(`sass: no .bin file under ${dir} (was the bench run with __GL_SHADER_DISK_CACHE_PATH set?)`);
  mkdirSync(out, { recursive: true });
  const nvdisasm = ['/usr/local/cuda/bin/nvdisasm', 'nvdisasm'].find((p) => spawnSync(p, ['--version']).status === 0);
  let n = 0;
  for (const f of files) {
    const file = readFileSync(f);
    for (const entry of cacheEntries(file)) {
      try {
        const { code, instructions, counts } = codeOf(decompress(file, entry));
        const name = join(out, `code_${n}.bin`);
        writeFileSync(name, code);
        console.log(`${name}: ${instructions} instructions; ${Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(', ')}`);
        if (flags.includes('--disasm')) {
          if (!nvdisasm) throw new Error('sass: --disasm needs nvdisasm (the CUDA toolkit)');
          const r = spawnSync(nvdisasm, ['-b', 'SM90', name], { maxBuffer: 1 << 28 });
          writeFileSync(join(out, `sass_${n}.txt`), r.stdout);
          if (r.status !== 0) console.log(`  nvdisasm: ${r.stderr.toString().split('\n')[0]}`);
        }
        n++;
      } catch (e) {
        console.log(`${f} at ${entry.offset}: skipped (${e.message})`);
      }
    }
  }
  if (n === 0) throw new Error(`sass: no compiled pipeline read from ${files.length} file(s)`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  try {
    main(process.argv.slice(2));
  } catch (e) {
    console.error(e.message);
    process.exit(1);
  }
}
