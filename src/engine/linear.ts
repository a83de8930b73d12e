// The frozen base linear of a decoder layer, y = x · Wᵀ (+ bias), whichever way W is stored:
// NF4 (the QLoRA path: fused dequantize-matmul, GEMV for a few rows) or dense in the activation
// dtype (an unquantized base: parity with transformers, dequantized NF4 for checks). The LoRA
// path next to it is lora.ts: its up-projection runs inside the NF4 tensor-core GEMM where that
// takes the product (matmul-mma.ts `lora`), else as its own kernels after the base.
import { expectShape, numel, type Tensor } from './tensor.ts';
import { FLAT_WORKGROUP, grid, type Kernels } from './kernels.ts';
import { encodeLora, encodeLoraU, type LoraWeights } from './lora.ts';
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
 * Records y = x · Wᵀ (+ bias) (+ s · (x Aᵀ) Bᵀ with `lora`). x [M, in] and y [M, out] in the
 * storage type (a dense W has it too). NF4: the fused kernel (GEMV up to NF4_GEMV_MAX_ROWS rows).
 * Dense: the tiled matmul with TRANS_B, then the bias as its own dispatch. LoRA: u first, then the
 * GEMM adds its up-projection where linearTakesLora, else lora.ts's kernels after the base.
 */
export function encodeLinear(kernels: Kernels, pass: GPUComputePassEncoder, x: Tensor, l: LinearWeight, y: Tensor, lora?: LinearLora): void {
  if (lora && l.kind === 'nf4' && nf4TakesLora(kernels, rowsOf(x), l.w)) {
    encodeLoraU(kernels, pass, x, lora.weights, lora.u);
    encodeNf4Matmul(kernels, pass, x, l.w, y, { bias: l.bias, lora: { u: lora.u, w: lora.weights.b, scale: lora.weights.scale } });
    return;
  }
  encodeBase(kernels, pass, x, l, y);
  if (lora) encodeLora(kernels, pass, x, lora.weights, lora.u, y);
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
