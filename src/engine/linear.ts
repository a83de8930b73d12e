// The frozen base linear of a decoder layer, y = x · Wᵀ (+ bias), whichever way W is stored:
// NF4 (the QLoRA path: fused dequantize-matmul, GEMV for a few rows) or dense in the activation
// dtype (an unquantized base: parity with transformers, dequantized NF4 for checks). The LoRA
// path next to it is lora.ts: where the NF4 tensor-core GEMM takes the product, it adds the
// up-projection itself (matmul-mma.ts `lora`) and computes u from its own f16 rows of x (`lora.down`;
// for q/k/v and gate/up one conversion and one down dispatch: encodeLinears), else lora.ts's kernels.
import { expectShape, numel, type Tensor } from './tensor.ts';
import { FLAT_WORKGROUP, grid, type Kernels } from './kernels.ts';
import { encodeLora, encodeLoraU, hasDropout, type LoraWeights } from './lora.ts';
import { encodeMmaRows, MMA_DOWN_GROUP, mmaTakesLoraDown } from './matmul-mma.ts';
import { encodeMatmul } from './matmul.ts';
import { encodeNf4Matmul, nf4TakesLora } from './nf4-matmul.ts';
import type { Nf4GpuWeight } from './nf4.ts';
import source from '../../shaders/bias.wgsl?raw';

/** A frozen linear, nn.Linear layout [out, in]; bias f32 [out] when the layer has one. */
export type LinearWeight =
  | { kind: 'nf4'; w: Nf4GpuWeight; bias?: Tensor }
  | { kind: 'dense'; w: Tensor; bias?: Tensor };

/** [out, in]. */
export function linearShape(l: LinearWeight): [number, number] {
  return [l.w.shape[0], l.w.shape[1]];
}

/** A LoRA adapter beside a linear, and where its u = x · Aᵀ goes (the backward reads it). */
export interface LinearLora {
  weights: LoraWeights;
  u: Tensor;
}

/** Whether the base's product of `rows` rows adds LoRA's term itself (the NF4 tensor-core GEMM). */
export function linearTakesLora(kernels: Kernels, l: LinearWeight, rows: number): boolean {
  return l.kind === 'nf4' && nf4TakesLora(kernels, rows, l.w);
}

/**
 * Whether the base's tensor-core product with input `a` (x in the forward, dy in the backward)
 * computes LoRA's u (du) itself from its f16 rows of a (matmul-mma.ts `lora.down`, encodeMmaRows):
 * where linearTakesLora, without dropout (no mask to apply to a alone), mmaTakesLoraDown.
 */
export function linearComputesLoraU(kernels: Kernels, l: LinearWeight, a: Tensor, lora: LoraWeights): boolean {
  return linearTakesLora(kernels, l, rowsOf(a)) && !hasDropout(lora) && mmaTakesLoraDown(a, a.shape[a.shape.length - 1]);
}

/**
 * Records LoRA's u = x · Aᵀ alone, made as encodeLinear makes it for this linear (the same values:
 * on the tensor cores from x's f16 rows where linearComputesLoraU, else lora.ts's down): the
 * recompute before a layer's backward, which skips down_proj's base product but needs its u.
 */
export function encodeLinearLoraU(kernels: Kernels, pass: GPUComputePassEncoder, x: Tensor, l: LinearWeight, lora: LinearLora): void {
  if (linearComputesLoraU(kernels, l, x, lora.weights)) encodeMmaRows(kernels, pass, x, rowsOf(x), x.shape[x.shape.length - 1], [{ d: lora.weights.a, u: lora.u, scale: 1 }]);
  else encodeLoraU(kernels, pass, x, lora.weights, lora.u);
}

/**
 * Records y = x · Wᵀ (+ bias) (+ s · (x Aᵀ) Bᵀ with `lora`). x [M, in] and y [M, out] in the
 * storage type (a dense W has it too). NF4: the fused kernel (GEMV up to NF4_GEMV_MAX_ROWS rows).
 * Dense: the tiled matmul with TRANS_B, then the bias as its own dispatch. LoRA: where linearTakesLora
 * the GEMM adds its up-projection, and computes u itself from its f16 rows of x where it can (else u
 * first); otherwise lora.ts's kernels after the base.
 */
export function encodeLinear(kernels: Kernels, pass: GPUComputePassEncoder, x: Tensor, l: LinearWeight, y: Tensor, lora?: LinearLora): void {
  if (lora && l.kind === 'nf4' && nf4TakesLora(kernels, rowsOf(x), l.w)) {
    const down = linearComputesLoraU(kernels, l, x, lora.weights);
    if (!down) encodeLoraU(kernels, pass, x, lora.weights, lora.u);
    const { a, b, scale } = lora.weights;
    encodeNf4Matmul(kernels, pass, x, l.w, y, { bias: l.bias, lora: { u: lora.u, w: b, scale, down: down ? { d: a, scale: 1 } : undefined } });
    return;
  }
  encodeBase(kernels, pass, x, l, y);
  if (lora) encodeLora(kernels, pass, x, lora.weights, lora.u, y);
}

/** A projection of a shared x (q/k/v, gate/up): its weight, output and adapter. */
export interface LinearOf {
  l: LinearWeight;
  y: Tensor;
  lora?: LinearLora;
}

/**
 * Records encodeLinear for the projections of one x. Where all run on the NF4 tensor cores and compute
 * their adapters' u there (f32 x, K % 16 == 0, no dropout, up to MMA_DOWN_GROUP adapters), x's f16
 * rows and every u come from one f16-rows and one down dispatch for all of them (encodeMmaRows).
 */
export function encodeLinears(kernels: Kernels, pass: GPUComputePassEncoder, x: Tensor, items: readonly LinearOf[]): void {
  const k = x.shape[x.shape.length - 1];
  const m = rowsOf(x);
  const adapted = items.filter((i) => i.lora);
  const shared =
    items.length > 1 &&
    adapted.length <= MMA_DOWN_GROUP &&
    mmaTakesLoraDown(x, k) &&
    items.every(({ l, lora }) => (lora ? linearComputesLoraU(kernels, l, x, lora.weights) : linearTakesLora(kernels, l, m)));
  if (!shared) {
    for (const { l, y, lora } of items) encodeLinear(kernels, pass, x, l, y, lora);
    return;
  }
  const rows = encodeMmaRows(kernels, pass, x, m, k, adapted.map(({ lora }) => ({ d: lora!.weights.a, u: lora!.u, scale: 1 })));
  for (const { l, y, lora } of items) {
    if (l.kind !== 'nf4') throw new Error('unreachable: checked above');
    encodeNf4Matmul(kernels, pass, x, l.w, y, { bias: l.bias, rows, lora: lora && { u: lora.u, w: lora.weights.b, scale: lora.weights.scale } });
  }
}

const rowsOf = (x: Tensor): number => numel(x.shape) / x.shape[x.shape.length - 1];

function encodeBase(kernels: Kernels, pass: GPUComputePassEncoder, x: Tensor, l: LinearWeight, y: Tensor): void {
  if (l.kind === 'nf4') {
    encodeNf4Matmul(kernels, pass, x, l.w, y, { bias: l.bias });
    return;
  }
  const [n, k] = linearShape(l);
  if (x.shape.length !== 2) throw new Error(`linear: x has shape [${x.shape}], expected [rows, ${k}]`);
  encodeMatmul(kernels, pass, x, l.w, y, { m: x.shape[0], n, k, transB: true });
  if (l.bias) encodeBiasAdd(kernels, pass, y, l.bias);
}

/** Records y[r, j] += bias[j] for y [..., n] (storage type or f32) and bias f32 [n], in place. */
export function encodeBiasAdd(kernels: Kernels, pass: GPUComputePassEncoder, y: Tensor, bias: Tensor): void {
  const n = y.shape[y.shape.length - 1];
  expectShape('bias', bias, [n], 'bias');
  if (bias.dtype !== 'f32') throw new Error(`bias: bias must be f32, not ${bias.dtype}`);
  const total = numel(y.shape);
  const kernel = kernels.get({ name: 'bias', source, dtype: y.dtype });
  kernels.dispatch(pass, kernel, [y.buffer, bias.buffer], { total, n }, grid(kernels, Math.ceil(total / FLAT_WORKGROUP)));
}
