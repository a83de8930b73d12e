// Checks of the tensor-core GEMM against float64 on random inputs, for tests (tests/matmul-mma.test.ts,
// where the device has f16 subgroup matrices) and the benchmark (which checks every variant before
// timing it, and records the errors). Two errors per case: against the float64 product of the
// operands rounded to f16 (what the tensor cores multiply: only f32 accumulation and the output's
// rounding remain, bounded by MMA_TOLERANCE.rounded), and against the unrounded operands (what a
// caller gets: adds the f16 rounding of both operands, about 2^-11 of Σ|a·b|).
import { encodeMmaMatmul, MMA_TILINGS, mmaSource, type MmaOperand, type MmaTiling } from './matmul-mma.ts';
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

/** What the kernel multiplies for an f32 a: each row scaled by the power of two that brings its max |value| into
 * [2^14, 2^15) (shaders/row-scale.wgsl), rounded to f16, scaled back (exactly). */
function toF16ByRow(a: Float32Array, rows: number, k: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) {
    const row = a.subarray(r * k, (r + 1) * k);
    let max = 0;
    for (const x of row) if (Math.abs(x) > max) max = Math.abs(x);
    const s = max === 0 || !Number.isFinite(max) ? 0 : Math.min(126, Math.max(-126, 14 - Math.floor(Math.log2(max))));
    const scaled = toF16(Float32Array.from(row, (x) => x * 2 ** s));
    for (let i = 0; i < k; i++) out[r * k + i] = scaled[i] * 2 ** -s;
  }
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
  submitPass(kernels, (pass) => encodeMmaMatmul(kernels, pass, a, operand, out, { ...c, bias, accumulate: c.accumulate }, { tiling }));
  const got = await readTensor(device, out);
  const shape = { m, n: nc, k: ki, transB: c.transB };
  const errOf = (aa: Float32Array, bb: Float32Array) => {
    const { c: want, scale } = matmulRef(aa, bb, shape);
    for (let i = 0; i < want.length; i++) {
      const extra = (biasHost?.[i % nc] ?? 0) + (beforeStored?.[i] ?? 0);
      want[i] += extra;
      scale[i] += Math.abs(extra);
    }
    return maxRelError(got, want, scale);
  };
  const errRounded = errOf(c.dtype === 'f32' ? toF16ByRow(aHost, m, ki) : aHost, toF16(bHost));
  const errExact = errOf(aHost, bHost);
  a.buffer.destroy();
  out.buffer.destroy();
  bias?.buffer.destroy();
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
  cases.push({ ...base, b: 'nf4', transB: true, dtype: 'f32', outDtype: 'f32', bias: true });
  cases.push({ ...base, b: 'nf4', transB: false, dtype: 'f32', outDtype: 'f32', accumulate: true });
  cases.push({ ...base, b: 'nf4', transB: false, dtype: 'f32', outDtype: 'f32', spreadRows: true });
  if (f16) {
    cases.push({ ...base, b: 'dense', transB: true, dtype: 'f16', outDtype: 'f16' });
    cases.push({ ...base, b: 'nf4', transB: true, dtype: 'f16', outDtype: 'f32', bias: true });
    cases.push({ ...base, b: 'nf4', transB: false, dtype: 'f16', outDtype: 'f16', accumulate: true });
  }
  return cases;
}

/**
 * A digest (64-bit FNV-1a, hex) of every shader the tensor-core GEMM can run: each tiling and
 * variant as generated, and the f32 conversion. A record of checks made on a device with subgroup
 * matrices (tests/fixtures/mma) is for the shaders with this digest.
 */
export function mmaSourcesDigest(): string {
  const texts = [f16RowsSource];
  for (const tiling of Object.values(MMA_TILINGS)) {
    for (const kind of ['dense', 'nf4'] as const) {
      for (const transB of [true, false]) {
        for (const vec of [true, false]) {
          for (const scaled of [true, false]) texts.push(mmaSource({ kind, transB, vec, scaled }, tiling));
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
