// Checks of attention forward and backward in f16 storage against float64 on random inputs, as
// encodeAttention / encodeAttentionBackward run them on the device at hand: on one with f16 subgroup
// matrices the tensor-core kernels (attention-mma.ts), elsewhere the SIMT ones. The benchmark runs
// them before timing attention; tests/fixtures/attention-mma keeps the benchmark machine's record,
// which tests/attention-mma.test.ts holds to these tolerances and to the shaders of this tree.
import { encodeAttention, type AttentionShape } from './attention.ts';
import { createAttentionBackwardStats, encodeAttentionBackward } from './attention-backward.ts';
import { attentionMmaApplies, attentionMmaBackwardApplies, attentionMmaBackwardSource, attentionMmaSource } from './attention-mma.ts';
import { submitPass, type Kernels } from './kernels.ts';
import { attentionRef, segmentIdsOf } from './reference/attention.ts';
import { attentionBackwardRef } from './reference/attention-backward.ts';
import { maxRelError } from './reference/matmul.ts';
import { createTensor, readTensor, uploadTensor, uploadU32, type Tensor } from './tensor.ts';
import { f16ArrayToF32, f32ArrayToF16 } from '../io/dtype.ts';
import { randomF32 } from '../util/random.ts';

export interface AttentionMmaCase extends AttentionShape {
  /** Lengths of the documents of each batch row (the rest of the row is padding, segment 0). */
  docs?: number[][];
  /** Key j scaled by 1 + growKeys · j / skv: rows whose max rises tile after tile (the forward's rescaling of o). */
  growKeys?: number;
  seed: number;
}

/** Storage of q, k, v, o and the gradients: all f16, all f32, or q, k, v in f16 beside f32 (training's arena). */
export type AttentionMmaStorage = 'f16' | 'f32' | 'f16qkv';

export interface AttentionMmaCheck {
  case: AttentionMmaCase;
  dtype: AttentionMmaStorage;
  /** Whether the tensor-core forward ran (else the SIMT one). */
  tensorCores: boolean;
  /** Whether the tensor-core backward ran (head dims multiple of 32; else the SIMT one). */
  backwardTensorCores: boolean;
  /** o: relative to Σ_j p_j |v_j| (f16RelError); lse: |got - want| / max(1, |want|). Against the inputs as stored. */
  o: number;
  lse: number;
  /** The same against q, k, v rounded to f16 (what the tensor cores multiply; for f16 storage the same as o). */
  oRounded: number;
  /** o again from the forward's lse (lseKnown: training's recompute), as `o`; and whether lse came out unchanged. */
  oKnown: number;
  lseKept: boolean;
  /** Against the reference's Σ|terms| of each gradient (reference/attention-backward.ts). */
  dq: number;
  dk: number;
  dv: number;
  ok: boolean;
}

/**
 * f16 storage: o and the gradients are rounded to f16 on the way out (2^-11 = 4.9e-4), the weights
 * p are rounded to f16 before p·v (another 2^-11 of Σ p|v|); the scores and lse come from the exact
 * products of the f16 inputs in f32. f32 storage (training): q and k rounded to f16 move each score
 * by up to 2^-11 of Σ|q·k| · scale (~11 for these inputs at head dim 128; most of it cancels), so p
 * and lse by a few 1e-4 to 1e-3; against the rounded inputs only p's rounding remains (oRounded,
 * held for the tensor cores only: the SIMT kernels multiply the f32 inputs). The tensor-core
 * backward rounds q, k, v, the scaled dO, p and ds to f16 (2^-11 each, a few of them per term);
 * the SIMT backward is f32 throughout but for f16 storage. Worst measured on the H200 over
 * attentionMmaCases (the fixture): f16 o 6.7e-4, lse 4.4e-7, gradients 8.2e-4 (SIMT 4.7e-4); f32 o
 * 1.9e-3 (3.6e-4 against f16 inputs), lse 1.2e-3, gradients 2.4e-3 (dv at scale 0.3; SIMT 3.0e-6);
 * f16 q, k, v beside f32 (tensor cores only) o 3.6e-4, lse 4.4e-7, gradients 4.1e-4.
 */
export const ATTENTION_MMA_TOLERANCE = {
  f16: { o: 2e-3, oRounded: 2e-3, lse: 1e-5, grad: 1e-3, gradTensorCores: 2e-3 },
  f32: { o: 4e-3, oRounded: 1e-3, lse: 3e-3, grad: 1e-5, gradTensorCores: 4e-3 },
  // f16 q, k, v (exact inputs: the f16 case's scores and lse) beside an f32 o and gradients (no output rounding).
  f16qkv: { o: 1e-3, oRounded: 1e-3, lse: 1e-5, grad: 2e-3, gradTensorCores: 2e-3 },
} as const;

/** Edges on every side (rows and keys not multiples of the tiles), GQA, documents with padding, a window, a KV-cache offset, each head dim's code path. */
export function attentionMmaCases(): AttentionMmaCase[] {
  const c = (batch: number, tq: number, skv: number, heads: number, kvHeads: number, headDim: number, seed: number, more: Partial<AttentionMmaCase> = {}) => ({
    batch,
    tq,
    skv,
    heads,
    kvHeads,
    headDim,
    seed,
    ...more,
  });
  return [
    c(1, 200, 200, 4, 2, 64, 1),
    c(1, 200, 200, 4, 4, 128, 2),
    c(2, 150, 150, 2, 1, 128, 3, { docs: [[60, 50], [150]] }),
    c(1, 130, 130, 2, 2, 64, 4, { window: 40 }),
    c(1, 37, 300, 4, 1, 128, 5, { causalOffset: 263 }),
    c(1, 100, 100, 2, 1, 96, 6, { scale: 0.3 }),
    c(1, 70, 70, 2, 2, 32, 7),
    c(1, 1024, 1024, 2, 1, 128, 8, { docs: [[300, 500, 224]] }),
    c(1, 90, 90, 2, 1, 48, 9), // the forward on the tensor cores, the backward (head dims of 32s) on SIMT
    // Scores rising by tens (base 2) over the keys: the forward's m moves and o is rescaled in most tiles.
    c(1, 400, 400, 2, 1, 128, 10, { scale: 0.4, growKeys: 4 }),
  ];
}

/**
 * The checks: every case in both storage types, but the growing keys in f16 only. Their scores
 * reach tens, where f32 storage's rounding of q and k to f16 alone moves o and the gradients past
 * the tolerances (o 2e-2 against 4e-4 for the rounded inputs, measured on the H200). Then f16 q, k,
 * v beside f32 for the same cases where the backward takes the tensor cores (head dims of 32s; only
 * they take that storage: attentionMmaTakesF16Qkv). Not the growing keys there either: keys that get
 * almost no weight have f32 gradients of ~1e-12 that the tensor cores' f16 p (times 2^15) and ds
 * lose, which a relative measure without f16 storage's floor of one subnormal step calls wrong (dv
 * 1.0, dk 0.14 on the H200, with o, lse and dq at 4.0e-4, 7.6e-7 and 6.7e-5).
 */
export function attentionMmaChecks(): [AttentionMmaCase, AttentionMmaStorage][] {
  const cases = attentionMmaCases();
  const uniform = cases.flatMap((c) => (c.growKeys ? [[c, 'f16']] : [[c, 'f16'], [c, 'f32']]) as [AttentionMmaCase, AttentionMmaStorage][]);
  return [...uniform, ...cases.filter((c) => c.headDim % 32 === 0 && !c.growKeys).map((c) => [c, 'f16qkv'] as [AttentionMmaCase, AttentionMmaStorage])];
}

/** A case's random inputs (uniform in [-2, 2), as stored: rounded to f16 for f16 storage and for f16 q, k, v, dO included). */
export function attentionMmaInputs(c: AttentionMmaCase, storage: AttentionMmaStorage) {
  const dtype = storage === 'f32' ? 'f32' : 'f16';
  const { batch, tq, skv, heads, kvHeads, headDim: D } = c;
  const stored = (x: Float32Array) => (dtype === 'f16' ? round16(x) : x);
  const gen = (n: number, seed: number) => stored(randomF32(n, seed).map((x) => 2 * x));
  const x = { q: gen(batch * tq * heads * D, c.seed), k: gen(batch * skv * kvHeads * D, c.seed + 1), v: gen(batch * skv * kvHeads * D, c.seed + 2), dout: gen(batch * tq * heads * D, c.seed + 3) };
  if (c.growKeys) x.k = stored(x.k.map((y, e) => y * (1 + (c.growKeys! * (Math.floor(e / (kvHeads * D)) % skv)) / skv)));
  return x;
}

const round16 = (x: Float32Array) => f16ArrayToF32(f32ArrayToF16(x));

/**
 * maxRelError for an f16 output: less one step of f16's subnormals (2^-24) from each error first. A
 * gradient of a key that few queries attend can be ~1e-6 where f16 keeps only a few bits, and no
 * kernel writing f16 does better than that step there.
 */
function f16RelError(got: ArrayLike<number>, want: ArrayLike<number>, scale: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    const err = Math.max(0, Math.abs(got[i] - want[i]) - 2 ** -24) / Math.max(scale[i], Number.MIN_VALUE);
    if (Number.isNaN(err)) return NaN;
    worst = Math.max(worst, err);
  }
  return worst;
}

/** Runs the forward and the backward (from the reference forward's o and lse) in `storage` and compares both with float64. */
export async function checkAttentionMma(kernels: Kernels, c: AttentionMmaCase, storage: AttentionMmaStorage): Promise<AttentionMmaCheck> {
  const { device } = kernels;
  const { batch, tq, skv, heads, kvHeads, headDim: D } = c;
  const dtype = storage === 'f16' ? 'f16' : 'f32'; // o, dO and the gradients
  const qkvType = storage === 'f32' ? 'f32' : 'f16';
  const stored = (x: Float32Array) => (dtype === 'f16' ? round16(x) : x);
  const x = attentionMmaInputs(c, storage);
  const seg = c.docs ? segmentIdsOf(c.docs, skv) : undefined;
  const qShape = [batch, tq, heads, D];
  const kvShape = [batch, skv, kvHeads, D];
  const up = (a: Float32Array, shape: number[]) => uploadTensor(device, a, shape, dtype);
  const q = uploadTensor(device, x.q, qShape, qkvType);
  const k = uploadTensor(device, x.k, kvShape, qkvType);
  const v = uploadTensor(device, x.v, kvShape, qkvType);
  const segmentIds = seg ? uploadU32(device, seg) : undefined;

  // Forward.
  const o = createTensor(device, qShape, dtype);
  const lse = createTensor(device, [batch, heads, tq], 'f32');
  submitPass(kernels, (pass) => encodeAttention(kernels, pass, { q, k, v, o, lse, segmentIds }, c));
  const [gotO, gotLse] = [await readTensor(device, o), await readTensor(device, lse)];
  const ref = attentionRef(x.q, x.k, x.v, seg, c);
  let lseErr = 0;
  for (let i = 0; i < ref.lse.length; i++) {
    const e = Math.abs(gotLse[i] - ref.lse[i]) / Math.max(1, Math.abs(ref.lse[i]));
    lseErr = Number.isNaN(e) ? NaN : Math.max(lseErr, e);
  }
  const outErr = dtype === 'f16' ? f16RelError : maxRelError;
  const oErr = outErr(gotO, ref.o, ref.oScale);
  const refRounded = qkvType === 'f16' ? ref : attentionRef(round16(x.q), round16(x.k), round16(x.v), seg, c);
  const oRounded = outErr(gotO, refRounded.o, refRounded.oScale);
  // Again from the lse just written, as training's recompute of a layer runs it.
  const o2 = createTensor(device, qShape, dtype);
  submitPass(kernels, (pass) => encodeAttention(kernels, pass, { q, k, v, o: o2, lse, segmentIds, lseKnown: true }, c));
  const [gotO2, gotLse2] = [await readTensor(device, o2), await readTensor(device, lse)];
  const oKnown = outErr(gotO2, ref.o, ref.oScale);
  const lseKept = gotLse2.every((x, i) => Object.is(x, gotLse[i]));
  o2.buffer.destroy();

  // Backward, from the reference's o and lse (as the forward hands them over: f16 and f32).
  const t = {
    q,
    k,
    v,
    o: up(stored(Float32Array.from(ref.o)), qShape),
    lse: uploadTensor(device, Float32Array.from(ref.lse), [batch, heads, tq], 'f32'),
    segmentIds,
    dout: up(x.dout, qShape),
    dq: createTensor(device, qShape, dtype),
    dk: createTensor(device, kvShape, dtype),
    dv: createTensor(device, kvShape, dtype),
    stats: createAttentionBackwardStats(device, c),
  };
  submitPass(kernels, (pass) => encodeAttentionBackward(kernels, pass, t, c));
  const [dq, dk, dv] = [await readTensor(device, t.dq), await readTensor(device, t.dk), await readTensor(device, t.dv)];
  const back = attentionBackwardRef(x.q, x.k, x.v, x.dout, seg, c);
  const errs = { dq: outErr(dq, back.dq, back.dqScale), dk: outErr(dk, back.dk, back.dkScale), dv: outErr(dv, back.dv, back.dvScale) };
  for (const tensor of [o, lse, ...(Object.values(t) as (Tensor | undefined)[])]) tensor?.buffer.destroy();

  const tensorCores = attentionMmaApplies(kernels.gpu.info, dtype, D);
  const backwardTensorCores = attentionMmaBackwardApplies(kernels.gpu.info, dtype, D);
  const check = { case: c, dtype: storage, tensorCores, backwardTensorCores, o: oErr, oRounded, oKnown, lseKept, lse: lseErr, ...errs };
  return { ...check, ok: withinAttentionTolerance(check) };
}

/** Whether a check's errors are within ATTENTION_MMA_TOLERANCE (also for a recorded check). */
export function withinAttentionTolerance(c: Omit<AttentionMmaCheck, 'ok'>): boolean {
  const tol = ATTENTION_MMA_TOLERANCE[c.dtype];
  const within = (err: number, bound: number) => err <= bound; // false for NaN
  const grad = c.backwardTensorCores ? tol.gradTensorCores : tol.grad;
  return (
    within(c.o, tol.o) &&
    within(c.oKnown, tol.o) &&
    c.lseKept &&
    (!c.tensorCores || within(c.oRounded, tol.oRounded)) &&
    within(c.lse, tol.lse) &&
    within(c.dq, grad) &&
    within(c.dk, grad) &&
    within(c.dv, grad)
  );
}

/** A digest (64-bit FNV-1a, hex) of the tensor-core attention's shaders (forward and backward) for every head dim they take: a fixture of checks is for the shaders with this digest. */
export function attentionMmaDigest(): string {
  let h = 0xcbf29ce484222325n;
  for (let D = 16; D <= 128; D += 16) {
    for (const dtype of ['f16', 'f32'] as const) {
      const texts = [attentionMmaSource(D, dtype), ...(D % 32 === 0 ? [attentionMmaBackwardSource(D, dtype)] : [])];
      // f16 q, k, v beside f32: where the backward takes the tensor cores (attentionMmaTakesF16Qkv).
      if (dtype === 'f32' && D % 32 === 0) texts.push(attentionMmaSource(D, 'f32', 'f16'), attentionMmaBackwardSource(D, 'f32', 'f16'));
      for (const text of texts) {
        for (let i = 0; i < text.length; i++) h = ((h ^ BigInt(text.charCodeAt(i))) * 0x100000001b3n) & 0xffffffffffffffffn;
      }
    }
  }
  return h.toString(16).padStart(16, '0');
}
