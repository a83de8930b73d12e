import { beforeAll, describe, expect, it } from 'vitest';
import { submitPass, Kernels } from '../src/engine/kernels.ts';
import type { Gpu } from '../src/engine/gpu.ts';
import { lmHeadLogits } from '../src/engine/lmhead.ts';
import { destroyNf4, uploadNf4 } from '../src/engine/nf4.ts';
import { encodeNf4Gemv, gemvRowsPerWorkgroup, NF4_GEMV_MAX_ROWS, type Nf4GemvOptions } from '../src/engine/nf4-gemv.ts';
import { lmHeadRef } from '../src/engine/reference/lmhead.ts';
import { maxRelError } from '../src/engine/reference/matmul.ts';
import { nf4MatmulRef } from '../src/engine/reference/nf4-matmul.ts';
import { createTensor, readTensor, uploadTensor, type DType, type Tensor } from '../src/engine/tensor.ts';
import { quantizeNf4 } from '../src/io/nf4.ts';
import { randomF32 } from '../src/util/random.ts';
import { testGpu } from './gpu/device.ts';
import { asStored } from './gpu/values.ts';
import { gaussian } from './fixtures/gguf/helpers.ts';

// The decode GEMVs (shaders/nf4-gemv.wgsl, shaders/lmhead-row.wgsl) against float64, component-wise
// (|got - want| / Σ|x·w|, reference/matmul.ts maxRelError), as tests/nf4-matmul.test.ts does:
// f32 output 1e-5 (f32 accumulation of up to 4192 terms, about sqrt(K) · 2^-24 in practice, in an
// order the reference does not share); f16 output 1e-3 (its rounding adds 2^-11 relative). x in f16
// storage is rounded before the reference sees it, so only the output rounding differs. Both
// workgroup sums run on every device here: lavapipe has subgroups, so `subgroups: false` forces
// the workgroup-memory one.
const TOL = { f32: 1e-5, f16: 1e-3 };

let gpu: Gpu;
let kernels: Kernels;
beforeAll(async () => {
  gpu = await testGpu();
  kernels = new Kernels(gpu);
});

interface Case extends Pick<Nf4GemvOptions, 'subgroups' | 'workgroupSize' | 'rowsPerWorkgroup'> {
  m: number;
  k: number;
  n: number;
  blocksize?: number;
  dtype?: DType;
  out?: DType;
  bias?: boolean;
  accumulate?: boolean;
  /** f32 residual added in the epilogue. */
  residual?: boolean;
  /** LoRA rank of an up-projection added in the epilogue. */
  loraR?: number;
  /** u as that many parts [parts, m, r] that the GEMV sums (attention's per-head shares of o_proj's u). */
  loraParts?: number;
  /** rmsnorm: x is an f32 residual row, normalised with a weight in `dtype`; swiglu: x is the gate. */
  prologue?: 'rmsnorm' | 'swiglu';
}

const EPS = 1e-5;

/** Per row of x, the rmsnorm prologue's 1 / rms (1 under another prologue or none). */
function rstds(c: Case, x: Float32Array): number[] {
  return Array.from({ length: c.m }, (_, m) => {
    if (c.prologue !== 'rmsnorm') return 1;
    let ss = 0;
    for (let k = 0; k < c.k; k++) ss += x[m * c.k + k] ** 2;
    return 1 / Math.sqrt(ss / c.k + EPS);
  });
}

/** What multiplies W under the prologue, in float64 (rounded to f32 for the reference matmul). */
function prologueRef(c: Case, x: Float32Array, second: Float32Array | undefined): Float32Array {
  if (!c.prologue || !second) return x;
  const out = new Float32Array(x.length);
  const rs = rstds(c, x);
  for (let m = 0; m < c.m; m++) {
    const rstd = rs[m];
    for (let k = 0; k < c.k; k++) {
      const i = m * c.k + k;
      out[i] = c.prologue === 'rmsnorm' ? x[i] * second[k] * rstd : (x[i] / (1 + Math.exp(-x[i]))) * second[i];
    }
  }
  return out;
}

async function runCase(c: Case, seed: number): Promise<number> {
  const dtype = c.dtype ?? 'f32';
  const outType = c.out ?? dtype;
  const cpu = quantizeNf4(gaussian(c.n * c.k, seed, 0.02), { shape: [c.n, c.k], blocksize: c.blocksize ?? 64 });
  const w = uploadNf4(gpu.device, cpu);
  const xType = c.prologue === 'rmsnorm' ? 'f32' : dtype;
  const x = asStored(randomF32(c.m * c.k, seed + 1).map((v) => 3 * v), xType);
  const tx = uploadTensor(gpu.device, x, [c.m, c.k], xType);
  const second = c.prologue ? asStored(randomF32(c.prologue === 'rmsnorm' ? c.k : c.m * c.k, seed + 7), dtype) : undefined;
  const t2 = second ? uploadTensor(gpu.device, second, c.prologue === 'rmsnorm' ? [c.k] : [c.m, c.k], dtype) : undefined;
  const prologue = t2 && (c.prologue === 'rmsnorm' ? { kind: 'rmsnorm' as const, weight: t2, eps: EPS } : { kind: 'swiglu' as const, up: t2 });
  const bias = c.bias ? randomF32(c.n, seed + 2) : undefined;
  const tb = bias ? uploadTensor(gpu.device, bias, [c.n], 'f32') : undefined;
  const start = c.accumulate ? asStored(randomF32(c.m * c.n, seed + 3), outType) : undefined;
  const ty = start ? uploadTensor(gpu.device, start, [c.m, c.n], outType) : createTensor(gpu.device, [c.m, c.n], outType);
  const residual = c.residual ? randomF32(c.m * c.n, seed + 4) : undefined;
  const tr = residual ? uploadTensor(gpu.device, residual, [c.m, c.n], 'f32') : undefined;
  const r = c.loraR ?? 0;
  const parts = c.loraParts ?? 1;
  const [u, b] = [randomF32(parts * c.m * r, seed + 5), randomF32(c.n * r, seed + 6)];
  const scale = 0.37;
  const uShape = parts > 1 ? [parts, c.m, r] : [c.m, r];
  const lora = r > 0 ? { u: uploadTensor(gpu.device, u, uShape, 'f32'), b: uploadTensor(gpu.device, b, [c.n, r], 'f32'), scale, parts } : undefined;
  const { subgroups, workgroupSize, rowsPerWorkgroup } = c;
  submitPass(kernels, (pass) =>
    encodeNf4Gemv(kernels, pass, tx, w, ty, { bias: tb, accumulate: c.accumulate, subgroups, workgroupSize, rowsPerWorkgroup, residual: tr, lora, prologue }),
  );
  const got = await readTensor(gpu.device, ty);
  const ref = nf4MatmulRef(prologueRef(c, x, second), cpu, c.m, { bias });
  // Under the rmsnorm prologue u is the un-normed product (lora-gemv.wgsl's): the GEMV applies 1 / rms to the LoRA term too.
  const rs = rstds(c, x);
  for (let m = 0; m < c.m; m++) {
    for (let j = 0; j < c.n; j++) {
      const i = m * c.n + j;
      const add = (v: number) => {
        ref.c[i] += v;
        ref.scale[i] += Math.abs(v);
      };
      if (start) add(start[i]);
      if (residual) add(residual[i]);
      for (let part = 0; part < parts; part++) {
        for (let q = 0; q < r; q++) add(scale * rs[m] * u[(part * c.m + m) * r + q] * b[j * r + q]);
      }
    }
  }
  for (const t of [tx, ty, tb, tr, t2, lora?.u, lora?.b] as (Tensor | undefined)[]) t?.buffer.destroy();
  destroyNf4(w);
  return maxRelError(got, ref.c, ref.scale);
}

const label = (c: Case) =>
  `${c.m}x${c.k}->${c.n} ${c.dtype ?? 'f32'}${c.out && c.out !== c.dtype ? `->${c.out}` : ''}` +
  `${c.prologue ? ` ${c.prologue}(x)` : ''}${c.blocksize ? ` bs${c.blocksize}` : ''}${c.bias ? ' +bias' : ''}${c.accumulate ? ' +=' : ''}${c.residual ? ' +residual' : ''}${c.loraR ? ` +LoRA r${c.loraR}${c.loraParts ? ` in ${c.loraParts} parts` : ''}` : ''}` +
  `${c.subgroups === false ? ', workgroup sum' : ', subgroup sum'}${c.workgroupSize ? `, wg ${c.workgroupSize}` : ''}${c.rowsPerWorkgroup ? `, ${c.rowsPerWorkgroup} rows a workgroup` : ''}`;

// Each case compiles its own pipeline (entry point, prologue, LoRA, types are constants): lavapipe
// took 33 s for the largest (gemv8, workgroup sum) on an idle 2-core machine, over 60 with the CPU
// shared, hence the longer timeout.
describe('NF4 GEMV against float64 (component-wise)', { timeout: 180_000 }, () => {
  // K % 32 == 0 takes the 16-byte kernel (gemv), else gemv_any (K % 8 == 0 by words, else by
  // elements). N % 4 != 0 leaves a partial last workgroup; K / 32 = 131 chunks make three lanes
  // loop twice; blocksize 32 makes every chunk its own block, 128 two chunks per block.
  const cases: Case[] = [
    { m: 1, k: 4096, n: 70 },
    { m: 1, k: 4096, n: 70, subgroups: false },
    { m: 1, k: 4192, n: 9, blocksize: 128 },
    { m: 1, k: 96, n: 1, blocksize: 32 },
    { m: 8, k: 256, n: 37, bias: true, accumulate: true },
    { m: 1, k: 128, n: 6, workgroupSize: 256 },
    { m: 2, k: 200, n: 13, blocksize: 32 },
    { m: 3, k: 75, n: 6, bias: true },
    { m: 7, k: 77, n: 5, subgroups: false, accumulate: true },
    // The decode epilogue: residual and a LoRA up-projection (both kernels).
    { m: 1, k: 4096, n: 70, residual: true, loraR: 16 },
    { m: 3, k: 200, n: 13, accumulate: true, residual: true, loraR: 5, subgroups: false },
    // A rank above the workgroup's 128 lanes (lanes take a second column of B), several rows of x.
    { m: 2, k: 4096, n: 19, loraR: 150 },
    // u in parts that the GEMV sums (o_proj's per-head shares): 32 x 16 entries, four a lane, all
    // loaded ahead of the weights; a rank that does not divide the lanes (entries in other
    // columns) with several rows; 8 W rows and 40 parts (a fifth entry a lane, after the loop).
    { m: 1, k: 4096, n: 70, residual: true, loraR: 16, loraParts: 32 },
    { m: 3, k: 256, n: 13, loraR: 12, loraParts: 24, subgroups: false },
    { m: 1, k: 4096, n: 13, rowsPerWorkgroup: 8, loraR: 16, loraParts: 40 },
    // Prologues (decode's norm and SwiGLU folded in): one and several rows, both sums.
    { m: 1, k: 4096, n: 70, prologue: 'rmsnorm', residual: true, loraR: 16 },
    { m: 3, k: 256, n: 37, prologue: 'rmsnorm', subgroups: false },
    { m: 3, k: 256, n: 37, prologue: 'rmsnorm', loraR: 16 },
    { m: 1, k: 4096, n: 9, prologue: 'swiglu', residual: true },
    { m: 2, k: 448, n: 21, prologue: 'swiglu', bias: true, subgroups: false },
    // gemv8 (decode's gate/up: 8 W rows a workgroup): N % 8 == 5 leaves a last workgroup whose
    // second quad is partly and one whose second quad is wholly past N (n 13: rows 8-12).
    { m: 1, k: 4096, n: 13, rowsPerWorkgroup: 8, prologue: 'rmsnorm', residual: true, loraR: 16 },
    { m: 1, k: 4192, n: 13, rowsPerWorkgroup: 8, blocksize: 128, subgroups: false, bias: true, accumulate: true },
    { m: 1, k: 1024, n: 13, rowsPerWorkgroup: 8, prologue: 'swiglu', loraR: 136 },
  ];
  for (const [i, c] of cases.entries()) {
    it(`${label(c)} (< ${TOL.f32})`, async () => {
      const err = await runCase(c, 500 + i);
      console.log(`nf4 gemv ${label(c)}: ${err.toExponential(2)}`);
      expect(err).toBeLessThan(TOL.f32);
    });
  }

  const f16: (Case & { tol: number })[] = [
    { m: 1, k: 512, n: 1023, dtype: 'f16', out: 'f32', accumulate: true, tol: TOL.f32 },
    { m: 5, k: 320, n: 66, dtype: 'f16', subgroups: false, bias: true, tol: TOL.f16 },
    { m: 1, k: 2048, n: 11, dtype: 'f16', tol: TOL.f16 },
    { m: 4, k: 100, n: 10, dtype: 'f16', out: 'f32', subgroups: false, tol: TOL.f32 },
    { m: 1, k: 512, n: 64, dtype: 'f16', out: 'f32', residual: true, loraR: 16, tol: TOL.f32 },
    { m: 1, k: 4096, n: 64, dtype: 'f16', out: 'f32', prologue: 'rmsnorm', tol: TOL.f32 },
    { m: 2, k: 1024, n: 33, dtype: 'f16', prologue: 'swiglu', tol: TOL.f16 },
    { m: 1, k: 4096, n: 21, dtype: 'f16', rowsPerWorkgroup: 8, prologue: 'rmsnorm', loraR: 16, tol: TOL.f16 },
  ];
  for (const [i, c] of f16.entries()) {
    it(`${label(c)} (< ${c.tol})`, async (ctx) => {
      if (!gpu.info.f16) ctx.skip();
      const err = await runCase(c, 600 + i);
      console.log(`nf4 gemv ${label(c)}: ${err.toExponential(2)}`);
      expect(err).toBeLessThan(c.tol);
    });
  }

  it('picks 8 W rows a workgroup for one row of x over 8192 and more W rows (K % 32 == 0), and refuses them for more rows of x', () => {
    expect([gemvRowsPerWorkgroup(1, 14336, 4096), gemvRowsPerWorkgroup(1, 8191, 4096), gemvRowsPerWorkgroup(2, 14336, 4096), gemvRowsPerWorkgroup(1, 14336, 4100)]).toEqual([8, 4, 4, 4]);
    const w = uploadNf4(gpu.device, quantizeNf4(new Float32Array(8 * 64), { shape: [8, 64] }));
    const x = createTensor(gpu.device, [2, 64], 'f32');
    const y = createTensor(gpu.device, [2, 8], 'f32');
    expect(() => submitPass(kernels, (p) => encodeNf4Gemv(kernels, p, x, w, y, { rowsPerWorkgroup: 8 }))).toThrow(/one row of x and K % 32 == 0, not 2 rows/);
    destroyNf4(w);
  });

  it('rejects more rows than NF4_GEMV_MAX_ROWS', () => {
    const w = uploadNf4(gpu.device, quantizeNf4(new Float32Array(8 * 64), { shape: [8, 64] }));
    const x = createTensor(gpu.device, [NF4_GEMV_MAX_ROWS + 1, 64], 'f32');
    const y = createTensor(gpu.device, [NF4_GEMV_MAX_ROWS + 1, 8], 'f32');
    expect(() => submitPass(kernels, (p) => encodeNf4Gemv(kernels, p, x, w, y))).toThrow(/at most 8 rows, not 9/);
    destroyNf4(w);
  });
});

describe(`lm_head one-row logits (shaders/lmhead-row.wgsl) against float64 (component-wise, < ${TOL.f32})`, () => {
  // f32 dot products whatever the storage types (f16 values are exact in f32). H % 8 == 0 takes
  // the 16-byte kernel, else logits_row_any; V % 4 != 0 and a partial last chunk.
  const cases: { h: DType; e: DType; hidden: number; vocab: number; chunk: number; subgroups?: boolean }[] = [
    { h: 'f16', e: 'f16', hidden: 1024, vocab: 777, chunk: 256 },
    { h: 'f16', e: 'f16', hidden: 1024, vocab: 777, chunk: 256, subgroups: false },
    { h: 'f32', e: 'f16', hidden: 264, vocab: 301, chunk: 512 },
    { h: 'f32', e: 'f32', hidden: 264, vocab: 301, chunk: 256, subgroups: false },
    { h: 'f16', e: 'f32', hidden: 45, vocab: 70, chunk: 256 },
  ];
  for (const [i, c] of cases.entries()) {
    const name = `h ${c.h}, E ${c.e}, H ${c.hidden}, V ${c.vocab}, chunk ${c.chunk}${c.subgroups === false ? ', workgroup sum' : ''}`;
    it(name, async (ctx) => {
      if ((c.h === 'f16' || c.e === 'f16') && !gpu.info.f16) ctx.skip();
      const rows = 3;
      const h = asStored(randomF32(rows * c.hidden, 700 + i), c.h);
      const e = asStored(randomF32(c.vocab * c.hidden, 800 + i).map((v) => v * 0.5), c.e);
      const th = uploadTensor(gpu.device, h, [rows, c.hidden], c.h);
      const te = uploadTensor(gpu.device, e, [c.vocab, c.hidden], c.e);
      // The middle row, so that row0 is neither 0 nor the last.
      const out = lmHeadLogits(kernels, th, te, { firstRow: 1, chunk: c.chunk, subgroups: c.subgroups });
      const got = await readTensor(gpu.device, out);
      const ref = lmHeadRef(h.subarray(c.hidden, 2 * c.hidden), e, new Uint32Array(1), { rows: 1, hidden: c.hidden, vocab: c.vocab });
      const err = maxRelError(got, ref.logits, ref.logitScale);
      console.log(`lm_head row ${name}: ${err.toExponential(2)}`);
      for (const t of [th, te, out]) t.buffer.destroy();
      expect(err).toBeLessThan(TOL.f32);
    });
  }
});
