// The LoRA backward (shaders/lora-backward.wgsl): for y += s · (x Aᵀ) Bᵀ with u = x Aᵀ kept by
// encodeLora, given dy:
//   dB += s · dyᵀ u,  du = s · dy B,  dA += duᵀ x,  dx += du A
// The frozen base's share of dx comes from encodeNf4MatmulBackward (nf4-matmul.ts), recorded
// first; this adds LoRA's share to it. With dropout in training (lora.dropout, the forward's
// draw), dA and dx take the forward's mask. Reference: reference/lora-backward.ts.
import { type Kernels, withResidualType } from './kernels.ts';
import { dropoutParams } from './lora-dropout.ts';
import { hasDropout, type LoraWeights } from './lora.ts';
import { expectShape, numel, type DType, type Tensor } from './tensor.ts';
import dropoutSource from '../../shaders/lora-dropout.wgsl?raw';
import backwardSource from '../../shaders/lora-backward.wgsl?raw';

const source = `${dropoutSource}\n${backwardSource}`;

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
}

export interface LoraBackwardOptions {
  /** dA and dB += (default), or = (the first micro-batch of a step without zeroing). */
  accumulateGrads?: boolean;
  /** dx += du A (default: dx holds the frozen base's dy · W), or dx = du A. */
  accumulateDx?: boolean;
}

const DOWN_COLS = 16;
const DOWN_ROWS = 8;
const UP_TILE = 64;
const OUTER_COLS = 64;
const OUTER_R = 16;

/** Records the four dispatches of the LoRA backward into `pass` (in order: dB, du, dA, dx). */
export function encodeLoraBackward(
  kernels: Kernels,
  pass: GPUComputePassEncoder,
  lora: LoraWeights,
  grads: LoraGrads,
  t: LoraBackwardTensors,
  opts: LoraBackwardOptions = {},
): void {
  const { m, k, n, r } = check(lora, grads, t);
  const accGrads = opts.accumulateGrads ?? true ? 1 : 0;
  const accDx = opts.accumulateDx ?? true ? 1 : 0;
  const dxType: DType = t.dx?.dtype ?? t.x.dtype;
  const spec = withResidualType('lora_backward', source, t.x.dtype, dxType);
  const named = { name: `${spec.name}(D=${t.dy.dtype})`, source: `alias D = ${t.dy.dtype};\n${spec.source}` };
  const drop = hasDropout(lora);
  // The dropout phases (dA, dx) compile with DROPOUT; dB and du never need it.
  const get = (mode: number, outerX = false, dropout = false) =>
    kernels.get({ ...named, dtype: t.x.dtype, constants: { MODE: mode, OUTER_X: outerX, DROPOUT: dropout } });
  const { ro, rw } = placeholders(kernels.device);
  const base = { m, r, w_row: 0, w_red: 0, out_t: 0, accumulate: 0, scale: lora.scale, ...dropoutParams(lora.dropout) };
  // Buffers: x, dy, f1, f2, acc, y.
  kernels.dispatch(pass, get(2), [ro, t.dy.buffer, t.u.buffer, ro, grads.b.buffer, rw], { ...base, len: n, accumulate: accGrads }, [
    Math.ceil(n / OUTER_COLS),
    Math.ceil(r / OUTER_R),
  ]);
  kernels.dispatch(pass, get(0), [ro, t.dy.buffer, lora.b.buffer, ro, t.du.buffer, rw], { ...base, len: n, w_row: 1, w_red: r }, [
    Math.ceil(r / DOWN_COLS),
    Math.ceil(m / DOWN_ROWS),
  ]);
  kernels.dispatch(pass, get(2, true, drop), [t.x.buffer, ro, t.du.buffer, ro, grads.a.buffer, rw], { ...base, len: k, out_t: 1, accumulate: accGrads, scale: 1 }, [
    Math.ceil(k / OUTER_COLS),
    Math.ceil(r / OUTER_R),
  ]);
  if (t.dx) {
    kernels.dispatch(pass, get(1, false, drop), [ro, ro, t.du.buffer, lora.a.buffer, rw, t.dx.buffer], { ...base, len: k, w_row: 1, w_red: k, accumulate: accDx, scale: 1 }, [
      Math.ceil(k / UP_TILE),
      Math.ceil(m / UP_TILE),
    ]);
  }
}

function check(l: LoraWeights, g: LoraGrads, t: LoraBackwardTensors): { m: number; k: number; n: number; r: number } {
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
  if (new Set(buffers).size !== buffers.length) throw new Error(`${what}: x, A, B, u, dy, du, dA, dB and dx must be distinct buffers`);
  return { m: numel(lead), k, n, r };
}

/** Small buffers bound where a phase neither reads (ro) nor writes (rw) a binding. */
const placeholderCache = new WeakMap<GPUDevice, { ro: GPUBuffer; rw: GPUBuffer }>();
function placeholders(device: GPUDevice): { ro: GPUBuffer; rw: GPUBuffer } {
  let p = placeholderCache.get(device);
  if (!p) {
    const make = (label: string) => device.createBuffer({ size: 16, usage: GPUBufferUsage.STORAGE, label });
    p = { ro: make('lora_backward.unused-ro'), rw: make('lora_backward.unused-rw') };
    placeholderCache.set(device, p);
  }
  return p;
}
