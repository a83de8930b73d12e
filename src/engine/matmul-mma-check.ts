// Checks of the tensor-core GEMM against float64 on random inputs, for tests (tests/matmul-mma.test.ts,
// where the device has f16 subgroup matrices) and the benchmark (which checks every variant before
// timing it, and records the errors). Two errors per case: against the float64 product of the
// operands rounded to f16 (what the tensor cores multiply: only f32 accumulation and the output's
// rounding remain, bounded by MMA_TOLERANCE.rounded), and against the unrounded operands (what a
// caller gets: adds the f16 rounding of both operands, about 2^-11 of Σ|a·b|).
import { encodeMmaMatmul, encodeMmaRows, loraDownSource16, MMA_TILINGS, mmaSource, type MmaOperand, type MmaTiling } from './matmul-mma.ts';
import f16RowsSource from '../../shaders/f16-rows.wgsl?raw';
import { submitPass, type Kernels } from './kernels.ts';
import { dequantizeNf4Gpu, destroyNf4, quantizeNf4Gpu } from './nf4.ts';
import { matmulRef, maxRelError } from './reference/matmul.ts';
import { createTensor, readTensor, uploadTensor, type DType } from './tensor.ts';
import { f16ArrayToF32, f32ArrayToF16 } from '../io/dtype.ts';
import { randomF32 } from '../util/random.ts';
import { lmHeadLoss } from './lmhead.ts';
import { lmHeadBackward } from './lmhead-backward.ts';
import { lmHeadRef } from './reference/lmhead.ts';
import { lmHeadBackwardRef } from './reference/lmhead-backward.ts';
import { uploadU32 } from './tensor.ts';

export interface MmaCase {
  m: number;
  nc: number;
  ki: number;
  transB: boolean;
  b: MmaOperand['kind'];
  /** Storage type of a (a dense B is f16). */
  dtype: DType;
  /** Type of out. */
  outDtype: DType;
  bias?: boolean;
  accumulate?: boolean;
  /** Row i of a multiplied by 2^((i % 41) - 30): rows far below f16's normal range and above its max. */
  spreadRows?: boolean;
  /** LoRA's term (shaders/matmul-mma-lora.wgsl): u [m, r] (its rows spread as a's), L (lora_B or lora_A), scale.
   * With `down` u is not given but computed by the GEMM's call: u = down · a · Dᵀ for a random D [r, ki]. */
  lora?: { r: number; scale: number; down?: number };
}

export interface MmaCheck extends MmaCase {
  /** Against the product of the f16-rounded operands. */
  errRounded: number;
  /** Against the product of the operands as stored. */
  errExact: number;
  ok: boolean;
}

/** f32 accumulation (K · 2^-24 at worst, far less in practice) plus an f16 output's rounding (2^-11). */
export const MMA_TOLERANCE = { rounded: { f32: 1e-5, f16: 1e-3 }, exact: 2e-3 } as const;

const toF16 = (x: Float32Array) => f16ArrayToF32(f32ArrayToF16(x));

/** The power of two s of each row of an f32 a that brings its max |value| into [2^14, 2^15) (shaders/f16-rows.wgsl). */
function rowShifts(a: Float32Array, rows: number, k: number): number[] {
  return Array.from({ length: rows }, (_, r) => {
    let max = 0;
    for (const x of a.subarray(r * k, (r + 1) * k)) if (Math.abs(x) > max) max = Math.abs(x);
    return max === 0 || !Number.isFinite(max) ? 0 : Math.min(126, Math.max(-126, 14 - Math.floor(Math.log2(max))));
  });
}

/** Each row times 2^shift[r], rounded to f16, scaled back (exactly): what the kernel multiplies. */
function toF16ByRow(a: Float32Array, shifts: number[], k: number): Float32Array {
  const out = new Float32Array(a.length);
  shifts.forEach((s, r) => {
    const scaled = toF16(Float32Array.from(a.subarray(r * k, (r + 1) * k), (x) => x * 2 ** s));
    for (let i = 0; i < k; i++) out[r * k + i] = scaled[i] * 2 ** -s;
  });
  return out;
}

export async function checkMmaMatmul(kernels: Kernels, c: MmaCase, tiling?: MmaTiling, seed = 1): Promise<MmaCheck> {
  const { device } = kernels;
  const { m, nc, ki } = c;
  const stored = (x: Float32Array) => (c.dtype === 'f16' ? toF16(x) : x);
  const aHost = stored(randomF32(m * ki, seed));
  if (c.spreadRows) for (let i = 0; i < m * ki; i++) aHost[i] = Math.fround(aHost[i] * 2 ** ((Math.floor(i / ki) % 41) - 30));
  const a = uploadTensor(device, aHost, [m, ki], c.dtype, 'mma-check.a');
  const bShape = c.transB ? [nc, ki] : [ki, nc];
  let operand: MmaOperand;
  let bHost: Float32Array;
  if (c.b === 'dense') {
    bHost = toF16(randomF32(ki * nc, seed + 1));
    operand = { kind: 'dense', b: uploadTensor(device, bHost, bShape, 'f16', 'mma-check.b') };
  } else {
    const dense = uploadTensor(device, randomF32(ki * nc, seed + 1), bShape, 'f32', 'mma-check.w');
    const w = quantizeNf4Gpu(kernels, dense);
    const deq = dequantizeNf4Gpu(kernels, w, 'f32');
    bHost = await readTensor(device, deq); // what the kernel dequantizes, exactly (bnb's f32 product)
    for (const t of [dense, deq]) t.buffer.destroy();
    operand = { kind: 'nf4', w };
  }
  const biasHost = c.bias ? randomF32(nc, seed + 2) : undefined;
  const bias = biasHost && uploadTensor(device, biasHost, [nc], 'f32', 'mma-check.bias');
  const before = c.accumulate ? stored(randomF32(m * nc, seed + 3)) : undefined;
  const out = before ? uploadTensor(device, before, [m, nc], c.outDtype, 'mma-check.out') : createTensor(device, [m, nc], c.outDtype, 'mma-check.out');
  const beforeStored = before && (c.outDtype === 'f16' ? toF16(before) : before);
  // LoRA: u's rows as large as a's (u = x · Aᵀ, du = s · dy · B scale with their row), L small.
  const r = c.lora?.r ?? 0;
  const uHost = randomF32(m * r, seed + 4);
  for (let i = 0; i < m * r; i++) uHost[i] = Math.fround(uHost[i] * (c.spreadRows ? 2 ** ((Math.floor(i / r) % 41) - 30) : 1));
  const lHost = randomF32(r * nc, seed + 5).map((x) => x * 0.05);
  const downScale = c.lora?.down;
  const dHost = downScale !== undefined ? randomF32(r * ki, seed + 6).map((x) => x * 0.02) : undefined;
  const lora = c.lora && {
    u: dHost ? createTensor(device, [m, r], 'f32', 'mma-check.u') : uploadTensor(device, uHost, [m, r], 'f32', 'mma-check.u'),
    w: uploadTensor(device, lHost, c.transB ? [nc, r] : [r, nc], 'f32', 'mma-check.l'),
    scale: c.lora.scale,
    down: dHost && { d: uploadTensor(device, dHost, [r, ki], 'f32', 'mma-check.d'), scale: downScale! },
  };
  submitPass(kernels, (pass) => encodeMmaMatmul(kernels, pass, a, operand, out, { ...c, bias, accumulate: c.accumulate, lora }, { tiling }));
  const got = await readTensor(device, out);
  // u computed by the call: against float64 of a · Dᵀ, of the f16-rounded rows (what the tensor cores
  // multiply) and of the operands as stored; the output's references then take the u the GPU made
  // (rounded) or the exact one.
  let uErr = { rounded: 0, exact: 0 };
  let uExact = uHost;
  if (dHost && lora) {
    const gotU = await readTensor(device, lora.u);
    const uShape = { m, n: r, k: ki, transB: true };
    const ref = (aa: Float32Array, dd: Float32Array) => {
      const { c: want, scale } = matmulRef(aa, dd, uShape);
      return maxRelError(gotU, want.map((x) => x * downScale!), scale.map((x) => x * downScale!));
    };
    uErr = { rounded: ref(toF16ByRow(aHost, rowShifts(aHost, m, ki), ki), toF16ByRow(dHost, rowShifts(dHost, r, ki), ki)), exact: ref(aHost, dHost) };
    uExact = Float32Array.from(matmulRef(aHost, dHost, uShape).c, (x) => x * downScale!);
    uHost.set(gotU);
  }
  const shape = { m, n: nc, k: ki, transB: c.transB };
  const errOf = (aa: Float32Array, bb: Float32Array, uu: Float32Array, ll: Float32Array) => {
    const { c: want, scale } = matmulRef(aa, bb, shape);
    const term = r ? matmulRef(uu, ll, { ...shape, k: r }) : null;
    for (let i = 0; i < want.length; i++) {
      const extra = (biasHost?.[i % nc] ?? 0) + (beforeStored?.[i] ?? 0);
      want[i] += extra + (term?.c[i] ?? 0);
      scale[i] += Math.abs(extra) + (term?.scale[i] ?? 0);
    }
    return maxRelError(got, want, scale);
  };
  // What the kernel multiplies for LoRA: s · u (in f32) with a's row scale times 2^-12 and L times
  // 2^12 (f32 a), or neither (f16 a), each rounded to f16 (shaders/matmul-mma-lora.wgsl).
  const shifts = c.dtype === 'f32' ? rowShifts(aHost, m, ki) : new Array<number>(m).fill(12);
  const su = uHost.map((x) => Math.fround(x * (c.lora?.scale ?? 0)));
  const uRounded = toF16ByRow(su, shifts.map((s) => s - 12), r);
  const lRounded = c.dtype === 'f32' ? toF16(lHost.map((x) => x * 4096)).map((x) => x / 4096) : toF16(lHost);
  const errRounded = Math.max(uErr.rounded, errOf(c.dtype === 'f32' ? toF16ByRow(aHost, shifts, ki) : aHost, toF16(bHost), uRounded, lRounded));
  const errExact = Math.max(uErr.exact, errOf(aHost, bHost, uExact.map((x) => Math.fround(x * (c.lora?.scale ?? 0))), lHost));
  a.buffer.destroy();
  out.buffer.destroy();
  bias?.buffer.destroy();
  lora?.u.buffer.destroy();
  lora?.w.buffer.destroy();
  lora?.down?.d.buffer.destroy();
  if (operand.kind === 'dense') operand.b.buffer.destroy();
  else destroyNf4(operand.w);
  const ok = errRounded <= MMA_TOLERANCE.rounded[c.outDtype] && errExact <= MMA_TOLERANCE.exact;
  return { ...c, errRounded, errExact, ok };
}

/** The cases every variant must pass: edges on every side (m, nc, ki not multiples of any tile), both layouts, both B sources, epilogues. */
export function mmaCases(f16: boolean): MmaCase[] {
  const base = { m: 257, nc: 200, ki: 264 };
  const cases: MmaCase[] = [];
  for (const b of ['dense', 'nf4'] as const) {
    for (const transB of [true, false]) {
      cases.push({ ...base, b, transB, dtype: 'f32', outDtype: 'f32' });
    }
  }
  cases.push({ ...base, ki: 4104, b: 'nf4', transB: true, dtype: 'f32', outDtype: 'f32' });
  cases.push({ ...base, ki: 261, b: 'dense', transB: true, dtype: 'f32', outDtype: 'f32' });
  // a dense b's shares of four where rows hold a multiple of 4 but not of 8 (wideShares takes eight otherwise)
  cases.push({ ...base, ki: 268, b: 'dense', transB: true, dtype: 'f32', outDtype: 'f32' });
  cases.push({ ...base, nc: 204, b: 'dense', transB: false, dtype: 'f32', outDtype: 'f32', accumulate: true });
  cases.push({ ...base, nc: 201, b: 'nf4', transB: true, dtype: 'f32', outDtype: 'f32', bias: true }); // scalar stores (nc % 4 != 0)
  cases.push({ ...base, nc: 203, b: 'dense', transB: false, dtype: 'f32', outDtype: 'f32', accumulate: true, lora: { r: 16, scale: 1 } });
  cases.push({ ...base, b: 'nf4', transB: true, dtype: 'f32', outDtype: 'f32', bias: true });
  cases.push({ ...base, b: 'nf4', transB: false, dtype: 'f32', outDtype: 'f32', accumulate: true });
  cases.push({ ...base, b: 'nf4', transB: false, dtype: 'f32', outDtype: 'f32', spreadRows: true });
  if (f16) {
    cases.push({ ...base, b: 'dense', transB: true, dtype: 'f16', outDtype: 'f16' });
    cases.push({ ...base, b: 'nf4', transB: true, dtype: 'f16', outDtype: 'f32', bias: true });
    cases.push({ ...base, b: 'nf4', transB: false, dtype: 'f16', outDtype: 'f16', accumulate: true });
  }
  // LoRA's term: the training forward (x · Wᵀ + s · u · Bᵀ) and backward (dy · W + du · A, added to
  // dx), r over one chunk of any tiling (40: two chunks of a k32 tiling, three steps of a k64 one),
  // a short r, rows spread far, an f16 a.
  cases.push({ ...base, b: 'nf4', transB: true, dtype: 'f32', outDtype: 'f32', lora: { r: 16, scale: 2 } });
  cases.push({ ...base, b: 'nf4', transB: false, dtype: 'f32', outDtype: 'f32', accumulate: true, lora: { r: 16, scale: 1 } });
  cases.push({ ...base, b: 'nf4', transB: true, dtype: 'f32', outDtype: 'f32', bias: true, lora: { r: 40, scale: 0.5 } });
  cases.push({ ...base, b: 'dense', transB: true, dtype: 'f32', outDtype: 'f32', lora: { r: 8, scale: 4 } });
  cases.push({ ...base, b: 'nf4', transB: false, dtype: 'f32', outDtype: 'f32', spreadRows: true, lora: { r: 16, scale: 2 } });
  if (f16) cases.push({ ...base, b: 'nf4', transB: true, dtype: 'f16', outDtype: 'f32', lora: { r: 16, scale: 2 } });
  // u computed in the call from a's f16 rows (ki % 16 == 0; 1040: the down kernel's unrolled steps
  // and its tail): the forward (u = x · Aᵀ), the backward (du = s · dy · B, rows spread), r over
  // three blocks of 16 with a partial one, a short r.
  const down = { ...base, ki: 1040, dtype: 'f32', outDtype: 'f32' } as const;
  cases.push({ ...down, b: 'nf4', transB: true, lora: { r: 16, scale: 2, down: 1 } });
  cases.push({ ...down, b: 'nf4', transB: false, accumulate: true, spreadRows: true, lora: { r: 16, scale: 1, down: 2 } });
  cases.push({ ...down, b: 'nf4', transB: true, bias: true, lora: { r: 40, scale: 0.5, down: 1 } });
  cases.push({ ...down, b: 'dense', transB: true, lora: { r: 8, scale: 4, down: 1 } });
  return cases;
}

export interface MmaRowsCheck {
  /** Adapters' r (and their scales) of the one down dispatch. */
  r: number[];
  /** Worst of the u's and of the product that took the shared rows, against float64 of the f16-rounded rows, and of the operands as stored. */
  errRounded: number;
  errExact: number;
  ok: boolean;
}

/**
 * x's f16 rows and the u's of three adapters on it from one f16-rows and one down dispatch
 * (encodeMmaRows: q/k/v's), and a product that takes those rows instead of converting x again,
 * against float64.
 */
export async function checkMmaRows(kernels: Kernels, seed = 11): Promise<MmaRowsCheck> {
  const { device } = kernels;
  const [m, ki, nc] = [257, 1040, 200];
  const rs = [16, 40, 8];
  const scales = [1, 2, 0.5];
  const x = randomF32(m * ki, seed);
  for (let i = 0; i < m * ki; i++) x[i] = Math.fround(x[i] * 2 ** ((Math.floor(i / ki) % 41) - 30));
  const ds = rs.map((r, g) => randomF32(r * ki, seed + 1 + g).map((v) => v * 0.02));
  const b = toF16(randomF32(nc * ki, seed + 5));
  const tx = uploadTensor(device, x, [m, ki], 'f32', 'mma-rows.x');
  const tds = ds.map((d, g) => uploadTensor(device, d, [rs[g], ki], 'f32', 'mma-rows.d'));
  const us = rs.map((r) => createTensor(device, [m, r], 'f32', 'mma-rows.u'));
  const tb = uploadTensor(device, b, [nc, ki], 'f16', 'mma-rows.b');
  const out = createTensor(device, [m, nc], 'f32', 'mma-rows.out');
  submitPass(kernels, (pass) => {
    const rows = encodeMmaRows(kernels, pass, tx, m, ki, rs.map((_, g) => ({ d: tds[g], u: us[g], scale: scales[g] })));
    encodeMmaMatmul(kernels, pass, tx, { kind: 'dense', b: tb }, out, { m, nc, ki, transB: true, rows });
  });
  const [got, ...gotUs] = await Promise.all([readTensor(device, out), ...us.map((u) => readTensor(device, u))]);
  for (const t of [tx, ...tds, ...us, tb, out]) t.buffer.destroy();
  const x16 = toF16ByRow(x, rowShifts(x, m, ki), ki);
  const err = (aa: Float32Array, dd: Float32Array[], bb: Float32Array) => {
    const errs = dd.map((d, g) => {
      const { c: want, scale } = matmulRef(aa, d, { m, n: rs[g], k: ki, transB: true });
      return maxRelError(gotUs[g], want.map((v) => v * scales[g]), scale.map((v) => v * scales[g]));
    });
    const { c: want, scale } = matmulRef(aa, bb, { m, n: nc, k: ki, transB: true });
    return Math.max(...errs, maxRelError(got, want, scale));
  };
  const errRounded = err(x16, ds.map((d, g) => toF16ByRow(d, rowShifts(d, rs[g], ki), ki)), b);
  const errExact = err(x, ds, b);
  return { r: rs, errRounded, errExact, ok: errRounded <= MMA_TOLERANCE.rounded.f32 && errExact <= MMA_TOLERANCE.exact };
}

/**
 * A digest (64-bit FNV-1a, hex) of every shader the tensor-core GEMM can run: each tiling and
 * variant as generated, and the f32 conversion. A record of checks made on a device with subgroup
 * matrices (tests/fixtures/mma) is for the shaders with this digest.
 */
export function mmaSourcesDigest(): string {
  const texts = [f16RowsSource, loraDownSource16()];
  for (const tiling of Object.values(MMA_TILINGS)) {
    for (const kind of ['dense', 'nf4'] as const) {
      for (const transB of [true, false]) {
        for (const [vec, wide] of kind === 'dense' ? [[true, true], [true, false], [false, false]] : [[true, false], [false, false]]) {
          for (const scaled of [true, false]) {
            for (let lora = 0; lora <= tiling.bk / 16 + 1; lora++) {
              for (const vecOut of [true, false]) texts.push(mmaSource({ kind, transB, vec, wide, scaled, lora, vecOut }, tiling));
            }
          }
        }
      }
    }
  }
  let h = 0xcbf29ce484222325n;
  for (const text of texts) {
    for (let i = 0; i < text.length; i++) h = ((h ^ BigInt(text.charCodeAt(i))) * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return h.toString(16).padStart(16, '0');
}

export interface LmHeadMmaCheck {
  rows: number;
  hidden: number;
  vocab: number;
  chunk: number;
  /** max |lse - lse_ref| / max Σ|h·e| (the scale of a logit's rounding error). */
  lseErr: number;
  /** max |loss - loss_ref| over the trained rows, same scale. */
  lossErr: number;
  /** maxRelError of dh against float64 (per element, against Σ_v (p_v + [v = t]) |E_vk| / N). */
  dhErr: number;
  ok: boolean;
}

/** Both f16 roundings of a logit (h's row-scaled, E's) are 2^-11 each of its Σ|h·e|; dlogits' adds 2^-11 to dh. */
export const LMHEAD_MMA_TOLERANCE = { logit: 2e-3, dh: 4e-3 } as const;

/**
 * The lm_head loss and backward as training runs them (f32 h, f16 E, several vocabulary chunks and a
 * partial one, untrained rows) against float64: on a device with f16 subgroup matrices this is the
 * tensor-core path (lmhead.ts, lmhead-backward.ts); elsewhere the fused SIMT kernels.
 */
export async function checkLmHeadMma(kernels: Kernels, seed = 3): Promise<LmHeadMmaCheck> {
  const { device } = kernels;
  const [rows, hidden, vocab, chunk] = [160, 192, 4500, 2048];
  const h = randomF32(rows * hidden, seed);
  const e = toF16(randomF32(vocab * hidden, seed + 1).map((v) => v * 0.5));
  const targets = Uint32Array.from({ length: rows }, (_, r) => (r % 7 === 3 ? vocab : (r * 7919) % vocab));
  const normalizer = targets.filter((t) => t < vocab).length;
  const th = uploadTensor(device, h, [rows, hidden], 'f32');
  const te = uploadTensor(device, e, [vocab, hidden], 'f16');
  const tt = uploadU32(device, targets);
  const { lse, loss } = lmHeadLoss(kernels, th, te, tt, { chunk });
  const dh = lmHeadBackward(kernels, th, te, tt, lse, { normalizer, chunk });
  const [gotLse, gotLoss, gotDh] = await Promise.all([readTensor(device, lse), readTensor(device, loss), readTensor(device, dh)]);
  for (const t of [th, te, tt, lse, loss, dh]) t.buffer.destroy();
  const ref = lmHeadRef(h, e, targets, { rows, hidden, vocab });
  const scale = ref.logitScale.reduce((m, v) => Math.max(m, v), 0);
  let lseErr = 0;
  let lossErr = 0;
  for (let r = 0; r < rows; r++) {
    lseErr = Math.max(lseErr, Math.abs(gotLse[r] - ref.lse[r]) / scale);
    lossErr = Math.max(lossErr, Math.abs(gotLoss[r] - ref.loss[r]) / scale);
  }
  const back = lmHeadBackwardRef(h, e, targets, { rows, hidden, vocab, normalizer });
  const dhErr = maxRelError(gotDh, back.dh, back.dhScale);
  const ok = lseErr <= LMHEAD_MMA_TOLERANCE.logit && lossErr <= LMHEAD_MMA_TOLERANCE.logit && dhErr <= LMHEAD_MMA_TOLERANCE.dh;
  return { rows, hidden, vocab, chunk, lseErr, lossErr, dhErr, ok };
}
