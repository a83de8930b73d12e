// The LoRA backward (shaders/lora-backward.wgsl + the products of shaders/lora.wgsl): for
// y += s · (x Aᵀ) Bᵀ with u = x Aᵀ kept by encodeLora, given dy:
//   dB += s · dyᵀ u,  du = s · dy B,  dA += duᵀ x,  dx += du A
// The frozen base's share of dx comes from encodeNf4MatmulBackward (nf4-matmul.ts), recorded
// first; this adds LoRA's share to it. Without dx it leaves du · A to the caller: the training
// backward has the base's tensor-core GEMM add it (train/backward.ts). With dropout in training
// (lora.dropout, the forward's draw), dA and dx take the forward's mask. Reference:
// reference/lora-backward.ts.
//
// Dispatches, in order: transpose B into the scratch (Bᵀ [r, N]) and du = down(dy, Bᵀ) (neither
// with duGiven: the caller's tensor-core GEMM made du from encodeLoraBTranspose's copy); dB by
// `outer` over dy and u, in chunks of tokens (partials in the scratch, then `sum`); dA the same
// over x and du; dx by `up`. The reductions over tokens (dA, dB: 2048 rows at the training shape)
// split across workgroups only through the caller's scratch (loraBackwardScratchBytes); without
// one each column block walks every row in one workgroup and du reads B in place: the same
// results, slower (tests and one-offs).
import { grid, type Kernels } from './kernels.ts';
import { dropoutParams } from './lora-dropout.ts';
import { encodeLoraDown, encodeLoraUp, hasDropout, loraModule, loraParams, splitRows, LORA_COLS, LORA_J_GROUP, type LoraModule, type LoraWeights } from './lora.ts';
import { expectShape, numel, type DType, type Tensor } from './tensor.ts';
import backwardSource from '../../shaders/lora-backward.wgsl?raw';

/** Gradients of lora_A [r, K] and lora_B [N, r], f32 (accumulated over micro-batches). */
export interface LoraGrads {
  a: Tensor;
  b: Tensor;
}

export interface LoraBackwardTensors {
  /** The forward's input [..., K], storage type. */
  x: Tensor;
  /** The forward's u = x Aᵀ [..., r], f32. */
  u: Tensor;
  /** Gradient of y [..., N]: the storage type or f32. */
  dy: Tensor;
  /** Output [..., r] f32: du = s · dy B (scratch the caller may reuse afterwards). */
  du: Tensor;
  /** Gradient of x [..., K], the storage type or f32: += du A. Omit when x needs no gradient. */
  dx?: Tensor;
  /**
   * Workspace of at least loraBackwardScratchBytes(...) bytes (STORAGE usage), free to overwrite:
   * B's transpose and the partial sums of dA and dB over chunks of tokens. Without it the
   * reductions over tokens run one column block per workgroup (correct, slower).
   */
  scratch?: GPUBuffer;
}

export interface LoraBackwardOptions {
  /** dA and dB += (default), or = (the first micro-batch of a step without zeroing). */
  accumulateGrads?: boolean;
  /** dx += du A (default: dx holds the frozen base's dy · W), or dx = du A. */
  accumulateDx?: boolean;
  /** du already holds s · dy · B: the base's tensor-core GEMM computed it from encodeLoraBTranspose's Bᵀ (train/backward.ts). */
  duGiven?: boolean;
}

export interface LoraBackwardShape {
  /** Rows (tokens). */
  m: number;
  /** in (columns of A and x). */
  k: number;
  /** out (rows of B, columns of dy). */
  n: number;
  r: number;
}

/**
 * Chunks of tokens of dA and dB: about this many workgroups in all (two waves of an H200: the
 * outer products hold 64 accumulators an invocation, two workgroups an SM), and at least 64 rows
 * each, so that the partials (chunks · C · r floats) stay well below the C · M inputs they sum.
 */
const OUTER_TARGET_WORKGROUPS = 512;
const MIN_CHUNK_ROWS = 64;

/** How the backward of one shape runs with a scratch: B transposed or not, and the chunks of dB and dA. */
function plan(s: LoraBackwardShape, scratch: boolean) {
  const chunks = (c: number) => (scratch ? splitRows(s.m, Math.ceil(c / LORA_COLS) * Math.ceil(s.r / LORA_J_GROUP), MIN_CHUNK_ROWS, OUTER_TARGET_WORKGROUPS) : { rows: 4 * Math.ceil(s.m / 4), blocks: 1 });
  const db = chunks(s.n);
  const da = chunks(s.k);
  // Bᵀ serves the 16-byte loads of down, which also need whole vec4s of dy (N % 4 == 0).
  const transpose = scratch && s.n % 4 === 0;
  const elements = Math.max(transpose ? s.r * s.n : 0, db.blocks > 1 ? db.blocks * s.n * s.r : 0, da.blocks > 1 ? da.blocks * s.k * s.r : 0);
  return { db, da, transpose, bytes: 4 * elements };
}

/** Bytes of the scratch encodeLoraBackward uses for this shape (0: it needs none). */
export function loraBackwardScratchBytes(s: LoraBackwardShape): number {
  return plan(s, true).bytes;
}

/** Records the LoRA backward into `pass` (dispatches in the order of the header). */
export function encodeLoraBackward(
  kernels: Kernels,
  pass: GPUComputePassEncoder,
  lora: LoraWeights,
  grads: LoraGrads,
  t: LoraBackwardTensors,
  opts: LoraBackwardOptions = {},
): void {
  const shape = check(lora, grads, t);
  const { m, k, n, r } = shape;
  const pl = plan(shape, !!t.scratch);
  if (t.scratch && t.scratch.size < pl.bytes) throw new Error(`lora backward: the scratch has ${t.scratch.size} bytes, this shape needs ${pl.bytes}`);
  const accGrads = opts.accumulateGrads ?? true;
  const accDx = opts.accumulateDx ?? true;
  const dxType: DType = t.dx?.dtype ?? t.x.dtype;
  const onDy = loraModule('lora_backward', backwardSource, t.x.dtype, t.dy.dtype, dxType);
  const onX = loraModule('lora_backward', backwardSource, t.x.dtype, t.x.dtype, dxType);
  const drop = hasDropout(lora);
  const scratch = t.scratch;

  // du = s · dy · B, reading Bᵀ (contiguous along N) where it can.
  const bt = opts.duGiven ? null : pl.transpose ? encodeLoraBTranspose(kernels, pass, lora, scratch) : null;
  if (bt) encodeLoraDown(kernels, pass, onDy, { g: t.dy.buffer, w: bt.buffer, wj: n, wc: 1, out: t.du.buffer, m, c: n, r, scale: lora.scale });
  else if (!opts.duGiven) encodeLoraDown(kernels, pass, onDy, { g: t.dy.buffer, w: lora.b.buffer, wj: 1, wc: r, out: t.du.buffer, m, c: n, r, scale: lora.scale });
  // dB += s · dyᵀ u  ([N, r]), dA += duᵀ dropout(x)  ([r, K]).
  encodeOuter(kernels, pass, onDy, { g: t.dy.buffer, f: t.u.buffer, out: grads.b.buffer, outT: false, m, c: n, r, scale: lora.scale, accumulate: accGrads, chunks: pl.db, scratch });
  encodeOuter(kernels, pass, onX, { g: t.x.buffer, f: t.du.buffer, out: grads.a.buffer, outT: true, m, c: k, r, scale: 1, accumulate: accGrads, chunks: pl.da, scratch, dropout: drop ? lora : null });
  // dx (+)= mask ∘ (du · A).
  if (t.dx) {
    encodeLoraUp(kernels, pass, onX, { f: t.du.buffer, w: lora.a.buffer, wj: k, wc: 1, y: t.dx.buffer, m, c: k, r, scale: 1, accumulate: accDx, dropout: drop ? lora.dropout : null });
  }
}

/**
 * Records Bᵀ [r, N] (f32) into the start of `scratch`, the copy du = s · dy · B reads (here, or in
 * the base's tensor-core GEMM: matmul-mma.ts `lora.down`); null without a scratch that holds it.
 */
export function encodeLoraBTranspose(kernels: Kernels, pass: GPUComputePassEncoder, lora: LoraWeights, scratch?: GPUBuffer): Tensor | null {
  const [n, r] = lora.b.shape;
  if (!scratch || scratch.size < 4 * r * n) return null;
  const mod = loraModule('lora_backward', backwardSource, 'f32', 'f32', 'f32'); // transpose reads and writes f32 alone
  kernels.dispatchAt(pass, kernels.get({ ...mod, entryPoint: 'transpose' }), [[1, lora.b.buffer], [3, { buffer: scratch, size: 4 * r * n }]], loraParams({ m: 0, k: n, r }), grid(kernels, Math.ceil((r * n) / 256)));
  return { buffer: scratch, shape: [r, n], dtype: 'f32' };
}

interface OuterArgs {
  g: GPUBuffer;
  f: GPUBuffer;
  out: GPUBuffer;
  /** out is [r, C] (dA) rather than [C, r] (dB). */
  outT: boolean;
  m: number;
  c: number;
  r: number;
  scale: number;
  accumulate: boolean;
  chunks: { rows: number; blocks: number };
  scratch?: GPUBuffer;
  dropout?: LoraWeights | null;
}

/** out (+)= scale · gᵀ f, over chunks of rows (partials in the scratch, then summed) or in one. */
function encodeOuter(kernels: Kernels, pass: GPUComputePassEncoder, mod: LoraModule, a: OuterArgs): void {
  const drop = !!a.dropout;
  const len = a.c * a.r;
  const split = a.chunks.blocks > 1 && !!a.scratch;
  const parts: GPUBufferBinding = { buffer: a.scratch ?? a.out, size: 4 * len * a.chunks.blocks };
  const kernel = kernels.get({ ...mod, entryPoint: 'outer', constants: { DROPOUT: drop } });
  const params = loraParams({
    m: a.m,
    k: a.c,
    r: a.r,
    rows: a.chunks.rows,
    out_t: a.outT ? 1 : 0,
    len,
    accumulate: split ? 0 : Number(a.accumulate),
    scale: split ? 1 : a.scale,
    ...dropoutParams(drop ? a.dropout?.dropout : null),
  });
  const cols = Math.ceil(a.c / LORA_COLS);
  kernels.dispatchAt(pass, kernel, [[0, a.g], [2, a.f], [3, split ? parts : a.out]], params, [cols, split ? a.chunks.blocks : 1, Math.ceil(a.r / LORA_J_GROUP)]);
  if (!split) return;
  const sum = kernels.get({ ...mod, entryPoint: 'sum' });
  kernels.dispatchAt(pass, sum, [[5, parts], [3, a.out]], loraParams({ m: a.m, k: a.c, r: a.r, len, parts: a.chunks.blocks, accumulate: Number(a.accumulate), scale: a.scale }), grid(kernels, Math.ceil(len / 256)));
}

function check(l: LoraWeights, g: LoraGrads, t: LoraBackwardTensors): LoraBackwardShape {
  const what = 'lora backward';
  if (l.a.shape.length !== 2 || l.b.shape.length !== 2) throw new Error(`${what}: A [${l.a.shape}] and B [${l.b.shape}] must be [r, in] and [out, r]`);
  const [r, k] = l.a.shape;
  const [n] = l.b.shape;
  expectShape(what, l.b, [n, r], 'B');
  expectShape(what, g.a, [r, k], 'dA');
  expectShape(what, g.b, [n, r], 'dB');
  if (t.x.shape.length < 1 || t.x.shape[t.x.shape.length - 1] !== k) throw new Error(`${what}: x has shape [${t.x.shape}], expected [..., ${k}]`);
  const lead = t.x.shape.slice(0, -1);
  expectShape(what, t.u, [...lead, r], 'u');
  expectShape(what, t.du, [...lead, r], 'du');
  expectShape(what, t.dy, [...lead, n], 'dy');
  if (t.dx) expectShape(what, t.dx, t.x.shape, 'dx');
  for (const [name, x] of Object.entries({ A: l.a, B: l.b, dA: g.a, dB: g.b, u: t.u, du: t.du })) {
    if (x.dtype !== 'f32') throw new Error(`${what}: ${name} must be f32, not ${x.dtype}`);
  }
  for (const [name, x] of Object.entries({ dy: t.dy, dx: t.dx })) {
    if (x && x.dtype !== 'f32' && x.dtype !== t.x.dtype) throw new Error(`${what}: ${name} must be f32 or ${t.x.dtype}, not ${x.dtype}`);
  }
  if (!Number.isFinite(l.scale)) throw new Error(`${what}: scale ${l.scale} is not finite`);
  const buffers = [t.x, l.a, l.b, t.u, t.dy, t.du, g.a, g.b, ...(t.dx ? [t.dx] : [])].map((x) => x.buffer);
  if (t.scratch) buffers.push(t.scratch);
  if (new Set(buffers).size !== buffers.length) throw new Error(`${what}: x, A, B, u, dy, du, dA, dB, dx and the scratch must be distinct buffers`);
  return { m: numel(lead), k, n, r };
}
