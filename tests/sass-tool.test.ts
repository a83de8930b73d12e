// tools/bench/sass.mjs reads the machine code NVIDIA's Vulkan driver keeps in its shader cache (an
// undocumented format: a "NVuc" blob per pipeline inside zstd frames). Synthetic files here: the
// parts it relies on, and what it does with files that do not have them.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { cacheEntries, codeOf, decompress, OPCODES } from '../tools/bench/sass.mjs';

const op = Object.fromEntries(Object.entries(OPCODES).map(([code, name]) => [name, Number(code)]));

/** A pipeline blob: the header (code size at word 5, code offset - 24 at word 9 after the magic), then instructions. */
function ucode(ops: number[], trailing = 3): Buffer {
  const start = 352 + 24;
  const blob = Buffer.alloc(start + 16 * (ops.length + trailing));
  blob.write('NVDANVVMNVuc', 0, 'latin1');
  blob.writeUInt32LE(16 * (ops.length + trailing), 12 + 5 * 4);
  blob.writeUInt32LE(352, 12 + 9 * 4);
  // Other bits of the first word set (registers, predicates): only the low 12 name the opcode.
  ops.forEach((o, i) => blob.writeUInt32LE(o | 0x7000 | ((i * 37) << 16), start + 16 * i));
  for (let i = 0; i < trailing; i++) blob.writeUInt32LE(0xabc, start + 16 * (ops.length + i)); // data past the last EXIT
  return blob;
}

describe('the shader-cache reader (tools/bench/sass.mjs)', () => {
  it('cuts a pipeline at its last EXIT and counts its memory, tensor and barrier instructions', () => {
    const ops = [op.LDSM, op.HMMA, op.HMMA, op.LDG, 0x224, op.STS, op.BAR, op.BRA, op.EXIT, op.LDS, op.EXIT];
    const { code, instructions, counts } = codeOf(ucode(ops));
    expect(instructions).toBe(ops.length);
    expect(code.length).toBe(16 * ops.length);
    expect(counts).toEqual({ HMMA: 2, LDSM: 1, LDS: 1, STS: 1, LDG: 1, BAR: 1, BRA: 1, EXIT: 2 });
  });

  it('refuses a blob without the header, one too short for it, and code without an EXIT', () => {
    const blob = ucode([op.HMMA, op.EXIT]);
    blob.write('XX', 0, 'latin1');
    expect(() => codeOf(blob)).toThrow(/not a compiled pipeline/);
    expect(() => codeOf(Buffer.from('NVDANVVMNVuc'))).toThrow(/not a compiled pipeline/);
    expect(() => codeOf(ucode([op.HMMA, op.LDG]))).toThrow(/no EXIT/);
    // An EXIT past the header's code size is not the pipeline's.
    const short = ucode([op.HMMA, op.EXIT]);
    short.writeUInt32LE(16, 12 + 5 * 4);
    expect(() => codeOf(short)).toThrow(/no EXIT in the 16 bytes/);
  });

  it("finds entries by their sizes before a zstd frame's magic, and passes over stray magic bytes", () => {
    const magic = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);
    const sizes = (c: number, u: number) => Buffer.from(new Uint32Array([c, u]).buffer);
    const file = Buffer.concat([Buffer.alloc(20, 1), sizes(40, 1000), magic, Buffer.alloc(36, 2), Buffer.alloc(8, 0xff), magic, Buffer.alloc(10)]);
    expect(cacheEntries(file)).toEqual([{ offset: 28, csize: 40, usize: 1000 }]);
    expect(cacheEntries(Buffer.alloc(100))).toEqual([]);
  });

  const zstd = spawnSync('zstd', ['--version']).status === 0;
  it.skipIf(!zstd)('decompresses an entry with the zstd program, and says when its size does not match', () => {
    const blob = ucode([op.HMMA, op.EXIT]);
    const frame = spawnSync('zstd', ['-c', '-q'], { input: blob }).stdout;
    const header = Buffer.from(new Uint32Array([frame.length, blob.length]).buffer);
    const next = Buffer.concat([Buffer.alloc(32, 7), header, frame]); // another entry after it: zstd complains, the length decides
    const file = Buffer.concat([Buffer.alloc(16, 3), header, frame, next]);
    const [first, second] = cacheEntries(file);
    expect(decompress(file, first)).toEqual(blob);
    expect(codeOf(decompress(file, second)).counts.HMMA).toBe(1);
    expect(() => decompress(file, { ...first, usize: blob.length + 1 })).toThrow(/gave \d+ bytes, its header says/);
  });
});
