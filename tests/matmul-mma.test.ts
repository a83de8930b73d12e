// The tensor-core GEMM's f32 operand path here (shaders/f16-rows.wgsl: rows scaled by powers of two
// into f16's range, exactly as the CPU model of it), and where the device has f16 subgroup matrices
// the GEMM itself against float64 (src/engine/matmul-mma-check.ts). On a device without them the
// GEMM's checks come from the benchmark machine: tests/fixtures/mma holds its record, and it must be
// for the shader this tree generates.
import { beforeAll, describe, expect, it } from 'vitest';
import { testGpu } from './gpu/device.ts';
import { Kernels, submitPass } from '../src/engine/kernels.ts';
import { encodeF16Rows } from '../src/engine/matmul-mma.ts';
import { checkLmHeadMma, checkMmaMatmul, checkMmaRows, LMHEAD_MMA_TOLERANCE, MMA_TOLERANCE, mmaCases, mmaSourcesDigest, type LmHeadMmaCheck, type MmaCheck, type MmaRowsCheck } from '../src/engine/matmul-mma-check.ts';
import { bShareOffset, shareOrder, spreadRows, constKLoop, elementOrderStores, chooseMma, fetchAfterFirstStep, fetchesBFirst, K_LOOP, K_LOOP_CONST, MMA_TILINGS, MMA_WORKGROUP_BYTES, mmaSource, SMALL_GRID, storeLayout, wideShares } from '../src/engine/matmul-mma.ts';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { uploadTensor } from '../src/engine/tensor.ts';
import { f16ArrayToF32, f32ArrayToF16 } from '../src/io/dtype.ts';
import { randomF32 } from '../src/util/random.ts';

async function readBinding(device: GPUDevice, b: GPUBufferBinding): Promise<ArrayBuffer> {
  const staging = device.createBuffer({ size: b.size!, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const enc = device.createCommandEncoder();
  enc.copyBufferToBuffer(b.buffer, b.offset ?? 0, staging, 0, b.size!);
  device.queue.submit([enc.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const out = staging.getMappedRange().slice(0);
  staging.destroy();
  return out;
}

describe('f16 rows (the f32 operand of the tensor-core GEMM)', () => {
  it.each([
    [300, 'vector loads'],
    [301, 'scalar loads'],
  ])('scales each row into [2^14, 2^15) by a power of two and rounds it to f16, as the CPU does (k %i: %s)', async (k) => {
    const gpu = await testGpu();
    if (!gpu.info.f16) return expect(gpu.info.features).not.toContain('shader-f16');
    const kernels = new Kernels(gpu);
    const m = 45;
    const a = randomF32(m * k, 5);
    // Rows from 2^-40 to 2^20 (below f16's subnormals, above its max), a zero row, an Inf, a NaN.
    for (let i = 0; i < m * k; i++) a[i] = Math.fround(a[i] * 2 ** (Math.floor(i / k) * 1.5 - 40));
    a.fill(0, 3 * k, 4 * k);
    a[5 * k + 7] = Infinity;
    a[6 * k + 2] = NaN;
    const t = uploadTensor(gpu.device, a, [m, k], 'f32');
    let got!: { values: GPUBufferBinding; scales: GPUBufferBinding };
    submitPass(kernels, (pass) => (got = encodeF16Rows(kernels, pass, t, m, k)));
    const values = f16ArrayToF32(new Uint16Array(await readBinding(gpu.device, got.values), 0, m * k));
    const scales = new Float32Array(await readBinding(gpu.device, got.scales));
    for (let r = 0; r < m; r++) {
      const row = a.subarray(r * k, (r + 1) * k);
      const max = row.reduce((x, v) => (Number.isNaN(v) ? x : Math.max(x, Math.abs(v))), 0);
      const s = max === 0 || max === Infinity ? 0 : 14 - Math.floor(Math.log2(max));
      expect([scales[2 * r], scales[2 * r + 1]], `row ${r}`).toEqual([2 ** s, 2 ** -s]);
      const want = f16ArrayToF32(f32ArrayToF16(Float32Array.from(row, (v) => v * 2 ** s)));
      expect(values.subarray(r * k, (r + 1) * k), `row ${r}`).toEqual(want);
      const top = Array.from(want, Math.abs).reduce((x, v) => (Number.isNaN(v) ? x : Math.max(x, v)), 0);
      if (s !== 0) expect(top).toBeGreaterThanOrEqual(2 ** 14);
      if (r === 5) expect(top).toBe(Infinity);
      else expect(top).toBeLessThanOrEqual(2 ** 15); // [2^14, 2^15) before rounding; f16 may round up to 2^15
    }
    t.buffer.destroy();
  });

  it("converts LoRA's down weights d_g [r_g, k] in the same dispatch, the same way, from row dRow (a's rows rounded up to 16) on, each in blocks of 16 rows", async () => {
    const gpu = await testGpu();
    if (!gpu.info.f16) return expect(gpu.info.features).not.toContain('shader-f16');
    const kernels = new Kernels(gpu);
    const [m, k] = [37, 48];
    const a = randomF32(m * k, 7);
    const ds = [40, 8, 16].map((r, g) => randomF32(r * k, 8 + g).map((v, i) => v * 2 ** -(Math.floor(i / k) % 9))); // rows 2^0 .. 2^-8
    const ta = uploadTensor(gpu.device, a, [m, k], 'f32');
    const tds = ds.map((d) => uploadTensor(gpu.device, d, [d.length / k, k], 'f32'));
    let got!: ReturnType<typeof encodeF16Rows>;
    submitPass(kernels, (pass) => (got = encodeF16Rows(kernels, pass, ta, m, k, tds)));
    expect(got.dRow).toBe(48);
    const end = 48 + 48 + 16 + 16; // whole blocks of 16 rows: the down kernel reads them
    expect(got.values.size).toBeGreaterThanOrEqual(end * k * 2);
    expect(got.scales.size).toBeGreaterThanOrEqual(end * 8);
    const values = f16ArrayToF32(new Uint16Array(await readBinding(gpu.device, got.values)));
    const scales = new Float32Array(await readBinding(gpu.device, got.scales));
    const rowsOf = (x: Float32Array, n: number, first: number) => {
      for (let j = 0; j < n; j++) {
        const row = x.subarray(j * k, (j + 1) * k);
        const s = 14 - Math.floor(Math.log2(row.reduce((y, v) => Math.max(y, Math.abs(v)), 0)));
        const at = first + j;
        expect([scales[2 * at], scales[2 * at + 1]], `row ${at}`).toEqual([2 ** s, 2 ** -s]);
        expect(values.subarray(at * k, (at + 1) * k), `row ${at}`).toEqual(f16ArrayToF32(f32ArrayToF16(Float32Array.from(row, (v) => v * 2 ** s))));
      }
    };
    rowsOf(a, m, 0);
    rowsOf(ds[0], 40, 48);
    rowsOf(ds[1], 8, 96);
    rowsOf(ds[2], 16, 112);
    for (const t of [ta, ...tds]) t.buffer.destroy();
  });
});

describe('tensor-core GEMM against float64 (devices with f16 subgroup matrices)', () => {
  it('passes every case at the stated tolerances', async () => {
    const gpu = await testGpu();
    if (!gpu.info.mmaF16) return; // lavapipe and SwiftShader have no subgroup matrices: see the fixture test
    const kernels = new Kernels(gpu);
    for (const c of mmaCases(gpu.info.f16)) {
      const r = await checkMmaMatmul(kernels, c);
      expect(r.ok, JSON.stringify(r)).toBe(true);
    }
    const rows = await checkMmaRows(kernels);
    expect(rows.ok, JSON.stringify(rows)).toBe(true);
  });
});

describe("the benchmark machine's record of the tensor-core GEMM checks (tests/fixtures/mma)", () => {
  // Made on the H200 with `npm run bench -- --only mma --checks-only --json B.json` and `node tools/bench/mma-fixture.mjs B.json`.
  const load = () => JSON.parse(readFileSync(join(import.meta.dirname, 'fixtures/mma/checks.json'), 'utf8')) as {
    digest: string;
    compileErrors: Record<string, string>;
    checks: (MmaCheck & { tiling: string })[];
    lmHead: LmHeadMmaCheck;
    rows: MmaRowsCheck;
  };
  let record: ReturnType<typeof load>;
  beforeAll(() => void (record = load()));

  it('is for the shaders this tree generates (re-run it on the GPU machine after changing them)', () => {
    expect(record.digest).toBe(mmaSourcesDigest());
    expect(record.compileErrors).toEqual({});
  });

  it('covers every case for every tiling and the chosen configuration, each within tolerance', () => {
    const tilings = new Set(record.checks.map((c) => c.tiling));
    expect([...tilings].sort()).toEqual([...Object.keys(MMA_TILINGS), 'chosen'].sort());
    for (const tiling of tilings) expect(record.checks.filter((c) => c.tiling === tiling)).toHaveLength(mmaCases(true).length);
    for (const c of record.checks) {
      expect(c.errRounded, JSON.stringify(c)).toBeLessThanOrEqual(MMA_TOLERANCE.rounded[c.outDtype]);
      expect(c.errExact, JSON.stringify(c)).toBeLessThanOrEqual(MMA_TOLERANCE.exact);
    }
  });

  it("has three adapters' u's from one down dispatch and a product on the shared f16 rows within tolerance (q/k/v's)", () => {
    expect(record.rows.r).toEqual([16, 40, 8]);
    expect(record.rows.errRounded).toBeLessThanOrEqual(MMA_TOLERANCE.rounded.f32);
    expect(record.rows.errExact).toBeLessThanOrEqual(MMA_TOLERANCE.exact);
  });

  it('has the lm_head loss and backward on the tensor cores within tolerance', () => {
    expect(record.lmHead.lseErr).toBeLessThanOrEqual(LMHEAD_MMA_TOLERANCE.logit);
    expect(record.lmHead.lossErr).toBeLessThanOrEqual(LMHEAD_MMA_TOLERANCE.logit);
    expect(record.lmHead.dhErr).toBeLessThanOrEqual(LMHEAD_MMA_TOLERANCE.dh);
  });
});

describe('the lm_head loss and backward as training runs them (f32 h, f16 E) against float64', () => {
  it('is within the tensor-core tolerances (here the SIMT kernels; the tensor cores on the GPU machine, in the fixture)', async () => {
    const gpu = await testGpu();
    if (!gpu.info.f16) return;
    const r = await checkLmHeadMma(new Kernels(gpu));
    console.log(`lm_head (${gpu.info.mmaF16 ? 'tensor cores' : 'SIMT'}): lse ${r.lseErr.toExponential(2)}, loss ${r.lossErr.toExponential(2)}, dh ${r.dhErr.toExponential(2)}`);
    expect(r.ok, JSON.stringify(r)).toBe(true);
  });
});

describe('the tiling the tensor-core GEMM takes (chooseMma)', () => {
  it('gives an NF4 product whose 256x128 grid is short 128x128 blocks, others 256x128; dense always 256x128', () => {
    const nf4 = (m: number, nc: number) => chooseMma('nf4', m, nc).tiling;
    expect(SMALL_GRID).toBe(128);
    expect(nf4(2048, 1024)).toBe(MMA_TILINGS['128x128-w8-k64']); // 8B k/v forward: 8 x 8 = 64 blocks
    expect(nf4(2048, 512)).toBe(MMA_TILINGS['128x128-w8-k64']); // 1B: 32
    expect(nf4(2048, 2048)).toBe(MMA_TILINGS['256x128-w8-k32']); // 8 x 16 = 128: not short
    expect(nf4(2048, 14336)).toBe(MMA_TILINGS['256x128-w8-k32']);
    expect(nf4(4096, 1024)).toBe(MMA_TILINGS['256x128-w8-k32']); // two rows of 2048: 16 x 8
    expect(chooseMma('nf4').tiling).toBe(MMA_TILINGS['256x128-w8-k32']);
    expect(chooseMma('dense', 2048, 512).tiling).toBe(MMA_TILINGS['256x128-w8-k32']);
    // a · B (transB false) on 128x256 blocks with k steps of 48; x·Bᵀ and NF4 never.
    expect(chooseMma('dense', 2048, 4096, false).tiling).toBe(MMA_TILINGS['128x256-w8-k48']);
    expect(chooseMma('nf4', 2048, 4096, false).tiling).toBe(MMA_TILINGS['256x128-w8-k32']);
    expect(chooseMma('nf4', 2048, 512).vec && chooseMma('dense').vec).toBe(true);
  });
});

describe("the tiles' store order (storeLayout)", () => {
  // A scalar f16 store instruction takes one pass through shared memory per distinct word in its
  // busiest bank; in element order the tilings below took two (a) and four (NF4 b) passes a store.
  // Where a subgroup's 32 lanes take whole rows of a's k step (BK / 4 shares a row divides 32): k steps
  // of 48 leave rows split between subgroups, and only a dense B (element order) runs on them.
  const wholeRows = Object.entries(MMA_TILINGS).filter(([, t]) => 32 % (t.bk / 4) === 0);
  it('runs NF4 only on tilings whose k step fills whole rows a subgroup', () => {
    for (const [m, nc] of [[2048, 1024], [2048, 14336], [64, 64]]) expect(32 % (chooseMma('nf4', m, nc).tiling.bk / 4)).toBe(0);
    expect(wholeRows.length).toBe(Object.keys(MMA_TILINGS).length - 1);
  });
  it.each(wholeRows)('stores every share of %s in one pass a store instruction (NF4)', (name, tiling) => {
    for (const transB of [true, false]) {
      const order = storeLayout({ kind: 'nf4', transB, vec: true, wide: false, scaled: true, lora: 0, vecOut: true }, tiling);
      expect(order.wavefronts.a, `${name} a`).toBe(order.least.a);
      expect(order.wavefronts.b, `${name} b`).toBe(order.least.b);
    }
  });

  it('takes more passes in element order (the count would catch a layout that made conflicts)', () => {
    const t = MMA_TILINGS['256x128-w8-k32'];
    const order = storeLayout({ kind: 'nf4', transB: true, vec: true, wide: false, scaled: true, lora: 0, vecOut: true }, t);
    // The generated shader carries the chosen order; element order is shift 5 with spread 1.
    const source = mmaSource({ kind: 'nf4', transB: true, vec: true, wide: false, scaled: true, lora: 0, vecOut: true }, t);
    expect(source).toContain(`const A_SPREAD = ${order.aSpread}u;`);
    expect(source).toContain(`const B_ROT = ${order.bRot}u;`);
    expect([order.aRot, order.bRot]).not.toContain(5);
    expect(order.aSpread).toBe(2);
  });

  it("keeps a dense B's GEMM in element order, and counts what that costs", () => {
    const t = MMA_TILINGS['256x128-w8-k32'];
    for (const transB of [true, false]) {
      const v = { kind: 'dense', transB, vec: true, wide: true, scaled: true, lora: 0, vecOut: true } as const;
      expect(elementOrderStores(v)).toBe(true);
      const order = storeLayout(v, t);
      expect([order.aSpread, order.aRot, order.bRot]).toEqual([1, 5, 5]);
      const source = mmaSource(v, t);
      for (const c of ['A_SPREAD = 1u', 'A_ROT = 5u', 'B_ROT = 5u']) expect(source).toContain(`const ${c};`);
      // a's shares: rows padded to 40 elements put some lanes' shares in one bank.
      expect(order.wavefronts.a).toBeGreaterThan(order.least.a);
      expect(order.wavefronts.b).toBeGreaterThanOrEqual(order.least.b);
    }
  });
});

describe("a dense b's shares of eight (wideShares)", () => {
  const t = MMA_TILINGS['256x128-w8-k32'];
  const dense = (wide: boolean, transB = true) => mmaSource({ kind: 'dense', transB, vec: true, wide, scaled: false, lora: 0, vecOut: true }, t);
  it('loads 16 bytes a share and stores its eight elements from four words', () => {
    const wide = dense(true);
    expect(wide).toContain('const PER = 8u;');
    for (const x of ['a', 'b']) expect(wide).toContain(`var<storage, read> ${x}: array<vec4<u32>>;`);
    expect(wide.match(/\[blk\]\[o \+ 7u\] = hi\.w;/g)).toHaveLength(2); // store_a and store_b
    // A k step of 256x128-k32: 8 (a) + 4 (b) shares of four, half as many of eight.
    expect(wide.match(/\bvar n[ab]\d+: /g)).toHaveLength(6);
    expect(dense(false).match(/\bvar n[ab]\d+: /g)).toHaveLength(12);
    expect(dense(false)).toContain('var<storage, read> a: array<vec4<f16>>;');
  });
  it('takes the constant-bounded k loop, and a·B fetches B first, only with shares of eight', () => {
    for (const transB of [true, false]) {
      const v = { kind: 'dense', transB, wide: true } as const;
      expect(constKLoop(v)).toBe(true);
      expect(constKLoop({ ...v, wide: false })).toBe(false);
      expect(constKLoop({ wide: wideShares('nf4') })).toBe(false); // NF4's products keep the template's loop
      expect(fetchesBFirst(v)).toBe(!transB);
      expect(fetchAfterFirstStep({ ...v, scaled: false })).toBe(false);
      const source = dense(true, transB);
      expect(source).toContain(K_LOOP_CONST);
      const loop = source.slice(source.indexOf(K_LOOP_CONST));
      expect(loop.indexOf('nb0 = fetch_b_in(') < loop.indexOf('na0 = fetch_a_in(')).toBe(!transB);
      expect(dense(false, transB)).toContain(K_LOOP);
    }
    expect(wideShares('dense')).toBe(true);
    expect(wideShares('nf4')).toBe(false);
  });
});

describe("x·Bᵀ's shares in spread rows (spreadRows)", () => {
  const t = MMA_TILINGS['256x128-w8-k32'];
  const xbt = { kind: 'dense', transB: true, vec: true, wide: true, scaled: false, lora: 0, vecOut: true } as const;
  it('permutes only the rows of a subgroup: a half-warp takes rows 0, 2, 4, 6 or 1, 3, 5, 7, each lane its own k', () => {
    const share = shareOrder(xbt, t);
    for (let f = 0; f < 1024; f++) {
      const g = share(f);
      expect(g >> 5, `share ${f} stays in its subgroup's set`).toBe(f >> 5);
      expect(g & 3, `share ${f} keeps its k`).toBe(f & 3);
    }
    expect(new Set(Array.from({ length: 1024 }, (_, f) => share(f))).size).toBe(1024);
    const rowsOf = (lanes: number[]) => [...new Set(lanes.map((l) => share(l) >> 2))].sort();
    expect(rowsOf(Array.from({ length: 16 }, (_, l) => l))).toEqual([0, 2, 4, 6]);
    expect(rowsOf(Array.from({ length: 16 }, (_, l) => 16 + l))).toEqual([1, 3, 5, 7]);
  });
  it("the shader's spread_rows is the same permutation", () => {
    const source = mmaSource(xbt, t);
    const body = /fn spread_rows\(f: u32\) -> u32 \{\n([\s\S]*?)\n\}/.exec(source)![1];
    const js = new Function('f', body.replace(/\blet\b/g, 'const').replace(/(0x[0-9a-f]+|\d+)u\b/g, '$1')) as (f: number) => number;
    const share = shareOrder(xbt, t);
    for (let f = 0; f < 4096; f++) expect(js(f) >>> 0).toBe(share(f));
    // a_slot, b_slot and store_b take their share through it
    expect(source.match(/let f = spread_rows\(tid \+ i \* THREADS\);/g)).toHaveLength(3);
  });
  it('takes two passes an 8-byte store where rows in order take three (counted per half-warp)', () => {
    const order = storeLayout(xbt, t);
    expect(order.wavefronts.a).toBe(2 * order.least.a);
    expect(order.wavefronts.b).toBe(2 * order.least.b);
    // The same count, written out here for one subgroup's share (rows of 40 elements, four shares a
    // row), in row order and in spread rows: a half-warp's busiest bank, each of the two stores.
    const passes = (rowOf: (lane: number) => number) =>
      [0, 1].flatMap((half) => [0, 16].map((first) => {
        const words = new Map<number, Set<number>>();
        for (let l = first; l < first + 16; l++) {
          const word = (rowOf(l) * 40 + (l & 3) * 8 + 4 * half) / 2;
          for (const w of [word, word + 1]) words.set(w % 32, (words.get(w % 32) ?? new Set<number>()).add(w));
        }
        return Math.max(...[...words.values()].map((x) => x.size));
      })).reduce((a, b) => a + b);
    expect(passes((l) => l >> 2)).toBe(12);
    expect(passes((l) => shareOrder(xbt, t)(l) >> 2)).toBe(8);
  });
  it('leaves every other product as it was', () => {
    expect(spreadRows(xbt, t)).toBe(true);
    expect(spreadRows({ ...xbt, wide: false }, t)).toBe(false);
    expect(spreadRows({ ...xbt, transB: false }, t)).toBe(false);
    expect(spreadRows(xbt, MMA_TILINGS['128x256-w8-k48'])).toBe(false);
    expect(mmaSource({ ...xbt, transB: false }, MMA_TILINGS['128x256-w8-k48'])).not.toContain('spread_rows');
    expect(mmaSource({ kind: 'nf4', transB: true, vec: true, wide: false, scaled: true, lora: 0, vecOut: true }, t)).not.toContain('spread_rows');
  });
});

describe('the generated GEMM shaders (every tiling and variant, checked as text: no GPU needed)', () => {
  // Tint rejects a subgroupMatrixLoad whose 16x16 access can pass the end of its workgroup array (a
  // generator change that read B's tile on from A's offsets did, on the GPU machine only); this
  // finds that here.
  // Each without LoRA's term and with one more step than a chunk holds (shaders/matmul-mma-lora.wgsl: its k steps read the same tiles).
  const variants = Object.entries(MMA_TILINGS).flatMap(([name, tiling]) =>
    (['dense', 'nf4'] as const).flatMap((kind) =>
      [true, false].flatMap((transB) =>
        (kind === 'dense' ? [true, false] : [false]).flatMap((wide) =>
          [0, tiling.bk / 16 + 1].map((lora) => ({
            name: `${name} ${kind} ${transB ? 'T' : 'N'}${wide ? ' wide' : ''}${lora ? ` lora${lora}` : ''}`,
            tiling,
            v: { kind, transB, vec: true, wide, scaled: true, lora, vecOut: true },
          })),
        ),
      ),
    ),
  );
  it.each(variants)('$name: every matrix load stays inside its tile', ({ v, tiling }) => {
    const source = mmaSource(v, tiling);
    const constant = (name: string) => Number(source.match(new RegExp(`const ${name} = (\\d+)u;`))![1]);
    const sizes: Record<string, number> = { tile_a: constant('TM') * 16 * constant('SA'), tile_b: constant('B_SUB') };
    const loads = [...source.matchAll(/subgroupMatrixLoad<[^>]*>, (?:row|col)_major>\(&(tile_[ab])\[\w+\], (\d+)u, (SA|SB)\)/g)];
    expect(loads.length).toBe((tiling.bk / 16 + v.lora) * (tiling.tm + tiling.tn));
    for (const [, tile, offset, stride] of loads) expect(Number(offset) + 15 * constant(stride) + 16, `${tile} at ${offset}`).toBeLessThanOrEqual(sizes[tile]);
  });

  // store_b's position is written as scalar lets reduced by constants (so that Tint's range analysis
  // bounds it and Chrome's robustness adds no clamp); evaluated here for every share of every
  // invocation, it is where b_slot and b_at put the share (bShareOffset, which storeLayout counts
  // banks by), and the share's last element stays inside its block.
  it.each(variants)("$name: store_b's tile position is b_at(b_slot()), inside the tile without a clamp", ({ v, tiling }) => {
    const source = mmaSource(v, tiling);
    const constant = (name: string) => BigInt(source.match(new RegExp(`const ${name} = (\\d+)u;`))![1]);
    const [BK, BN, TN, SB, SGC, THREADS, B_SUB] = ['BK', 'BN', 'TN', 'SB', 'SGC', 'THREADS', 'B_SUB'].map(constant);
    const lets = /fn store_b\(tid: u32, i: u32, v: BShare\) \{\n  let f = (tid \+ i \* THREADS|spread_rows\(tid \+ i \* THREADS\));\n  let blk = ([^;]*);\n  let o = ([^;]*);/.exec(source);
    expect(lets, 'store_b begins with its position as scalar lets').not.toBeNull();
    // u32 arithmetic on non-negative values: BigInt's / truncates as WGSL's does.
    const u32 = (expr: string) => new Function('f', 'BK', 'BN', 'TN', 'SB', 'SGC', `return ${expr.replace(/(\d+)u/g, '$1n')};`) as (...x: bigint[]) => bigint;
    const [blkOf, oOf] = [u32(lets![2]), u32(lets![3])];
    expect(lets![1].startsWith('spread_rows')).toBe(spreadRows(v, tiling));
    const share = shareOrder(v, tiling); // spread_rows, as the engine's own mirror of it (tested below)
    const per = v.kind === 'nf4' || v.wide ? 8n : 4n;
    const at = bShareOffset(v, tiling);
    for (let tid = 0n; tid < THREADS; tid++) {
      for (let i = 0n; i < (BN * BK) / (per * THREADS); i++) {
        const f = BigInt(share(Number(tid + i * THREADS)));
        const [blk, o] = [blkOf(f, BK, BN, TN, SB, SGC), oOf(f, BK, BN, TN, SB, SGC)];
        const want = at(Number(tid), Number(i));
        if (Number(blk * B_SUB + o) !== want) expect(Number(blk * B_SUB + o), `share ${i} of invocation ${tid}`).toBe(want);
        expect(blk < SGC && o + per <= B_SUB).toBe(true);
      }
    }
  });

  it('a tiling with a workgroup-memory budget of its own (two workgroups an SM) stays within it', () => {
    // The H200's driver gives an SM's workgroups ~48 KiB in all (tools/bench/residency-probe.ts): a
    // second 128x128 workgroup shares the SM only at under 24 KiB. One stage a round, in two turns
    // (20 KiB of tiles and one KiB of stage a subgroup would be exactly 24).
    const tiling = { ...MMA_TILINGS['128x128-w4-k32'], memory: 23 * 1024 };
    for (const scaled of [false, true]) {
      const source = mmaSource({ kind: 'dense', transB: true, vec: true, wide: true, scaled, lora: 0, vecOut: true }, tiling);
      const constant = (name: string) => Number(source.match(new RegExp(`const ${name} = (\\d+)u;`))![1]);
      const per = Number(source.match(/var<workgroup> stage: array<array<f32, 256u \* STAGE>, THREADS \/ (\d+)u>;/)![1]);
      const bytes = 2 * constant('BM') * constant('SA') + 2 * constant('SGC') * constant('B_SUB') + (scaled ? 4 * constant('BM') : 0) + (constant('THREADS') / per) * 1024 * constant('STAGE');
      expect(bytes).toBeLessThanOrEqual(23 * 1024);
      expect(constant('STAGE')).toBe(1);
      expect(per).toBe(64);
    }
    // The engine's own 128x128-w4-k32 takes two stages a round: 28 KiB, one workgroup an SM.
    expect(mmaSource({ kind: 'dense', transB: true, vec: true, wide: true, scaled: false, lora: 0, vecOut: true }, MMA_TILINGS['128x128-w4-k32'])).toContain('const STAGE = 2u;');
    expect(() => mmaSource({ kind: 'dense', transB: true, vec: true, wide: true, scaled: false, lora: 0, vecOut: true }, { ...tiling, memory: 16 * 1024 })).toThrow(/more than 16384 bytes/);
  });

  it.each(variants)('$name: the epilogue stages two result matrices a round for a dense B where 47 KiB of workgroup memory holds them', ({ v, tiling }) => {
    const source = mmaSource(v, tiling);
    const constant = (name: string) => Number(source.match(new RegExp(`const ${name} = (\\d+)u;`))![1]);
    const stages = constant('STAGE');
    const scales = source.includes('var<workgroup> a_scale: array<f32, BM>;') ? 4 * constant('BM') : 0;
    // The stage's areas: one a subgroup, or one for each of half the subgroups (two turns).
    const per = Number(source.match(/var<workgroup> stage: array<array<f32, 256u \* STAGE>, THREADS \/ (\d+)u>;/)![1]);
    const turns = per / 32;
    const tiles = 2 * constant('BM') * constant('SA') + 2 * constant('SGC') * constant('B_SUB');
    const bytes = tiles + scales + (constant('THREADS') / per) * 256 * stages * 4;
    expect(bytes).toBeLessThanOrEqual(MMA_WORKGROUP_BYTES);
    // Two turns only where one stage a subgroup does not fit (128x256 blocks with k steps of 48: 41 KB of tiles).
    expect(turns).toBe(tiles + scales + (constant('THREADS') / 32) * 1024 <= MMA_WORKGROUP_BYTES ? 1 : 2);
    if (tiling === MMA_TILINGS['128x256-w8-k48']) expect(turns).toBe(2);
    // Two for a dense B wherever a second stage fits (256x128 blocks with k steps of 32: 30 KB of tiles, 1 KB of row scales, 16 KB of stages).
    expect(stages).toBe(v.kind === 'dense' && turns === 1 && bytes + (stages === 1 ? 8192 : 0) <= MMA_WORKGROUP_BYTES ? 2 : 1);
    if (tiling === MMA_TILINGS['256x128-w8-k32']) expect(stages).toBe(v.kind === 'dense' ? 2 : 1);
    const cells = tiling.tm * tiling.tn;
    const area = turns === 1 ? 'sg' : `sg % ${constant('THREADS') / per}u`;
    const stores = [...source.matchAll(/subgroupMatrixStore<row_major>\(&stage\[([^\]]*)\], (\d+)u, (acc\d_\d)/g)];
    expect(stores.map((m) => m[1])).toEqual(Array(cells * turns).fill(area));
    expect(stores.map((m) => Number(m[2]))).toEqual(Array.from({ length: cells * turns }, (_, i) => 256 * (Math.floor(i / turns) % stages)));
    // Every result matrix staged once in each turn (by the turn's subgroups), and written out.
    expect(stores.map((m) => m[3])).toEqual(Array.from({ length: cells * turns }, (_, i) => `acc${Math.floor(Math.floor(i / turns) / tiling.tn)}_${Math.floor(i / turns) % tiling.tn}`));
    expect([...source.matchAll(/write_stage4?\(sg(?: % \d+u)?, /g)]).toHaveLength(cells * turns);
    if (turns === 2) expect(source).toContain(`if (sg / ${constant('THREADS') / 64}u == 1u) {`);
    const epilogue = source.slice(source.indexOf('subgroupMatrixStore<row_major>(&stage'));
    expect([...epilogue.matchAll(/workgroupBarrier\(\);/g)]).toHaveLength((2 * cells * turns) / stages);
  });
});
