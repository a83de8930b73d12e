// The LoRA path (shaders/lora.wgsl): y += scale · B (A x) beside a frozen (NF4) linear, with
// PEFT's names and layouts: lora_A [r, in], lora_B [out, r], scaling = lora_alpha / r, or
// lora_alpha / sqrt(r) with use_rslora. A and B are f32 master weights in both numeric modes.
// In training, lora_dropout applies to the LoRA path's input (lora-dropout.ts), with a mask the
// kernels derive from a key instead of reading it. Reference: reference/lora.ts.
import { expectShape, createTensor, numel, type Tensor } from './tensor.ts';
import { submitPass, withResidualType, type Kernels } from './kernels.ts';
import { dropoutParams, type LoraDropoutDraw } from './lora-dropout.ts';
import dropoutSource from '../../shaders/lora-dropout.wgsl?raw';
import loraSource from '../../shaders/lora.wgsl?raw';

const source = `${dropoutSource}\n${loraSource}`;

/** PEFT's `scaling`: lora_alpha / r, or lora_alpha / sqrt(r) with rsLoRA (use_rslora). */
export function loraScale({ r, alpha, rslora = false }: { r: number; alpha: number; rslora?: boolean }): number {
  if (!(Number.isInteger(r) && r > 0)) throw new Error(`lora: r must be a positive integer, not ${r}`);
  if (!Number.isFinite(alpha)) throw new Error(`lora: lora_alpha must be a finite number, not ${alpha}`);
  return rslora ? alpha / Math.sqrt(r) : alpha / r;
}

export interface LoraWeights {
  /** lora_A [r, K], f32. */
  a: Tensor;
  /** lora_B [N, r], f32. */
  b: Tensor;
  /** loraScale(...). */
  scale: number;
  /**
   * The dropout draw of the forward being recorded: set by the training step for each
   * micro-batch and cleared after it; absent or null (eval, chat): no dropout.
   */
  dropout?: LoraDropoutDraw | null;
}

/** Whether `l` drops anything in the forward being recorded (the kernels' DROPOUT override). */
export function hasDropout(l: LoraWeights): boolean {
  return !!l.dropout && l.dropout.p > 0;
}

const DOWN_COLS = 16;
const DOWN_ROWS = 8;
const UP_TILE = 64;

/**
 * Records u = x · Aᵀ and then y += scale · u · Bᵀ (two dispatches). x [..., K] in the storage
 * type; u [..., r] f32 (written; the backward pass reads it); y [..., N] in the storage type or
 * f32, updated in place (it holds the base layer's output). f32 accumulation.
 */
export function encodeLora(kernels: Kernels, pass: GPUComputePassEncoder, x: Tensor, lora: LoraWeights, u: Tensor, y: Tensor): void {
  const s = checkLora(x, lora, u, y);
  const spec = withResidualType('lora', source, x.dtype, y.dtype);
  const buffers = [x.buffer, lora.a.buffer, lora.b.buffer, u.buffer, y.buffer];
  const params = { m: s.m, k: s.k, n: s.n, r: s.r, scale: lora.scale, ...dropoutParams(lora.dropout) };
  const down = kernels.get({ ...spec, dtype: x.dtype, constants: { UP: false, DROPOUT: hasDropout(lora) } });
  kernels.dispatch(pass, down, buffers, params, [Math.ceil(s.r / DOWN_COLS), Math.ceil(s.m / DOWN_ROWS)]);
  const up = kernels.get({ ...spec, dtype: x.dtype, constants: { UP: true } });
  kernels.dispatch(pass, up, buffers, params, [Math.ceil(s.n / UP_TILE), Math.ceil(s.m / UP_TILE)]);
}

/** Allocates u, records encodeLora and submits it: y is updated in place; returns u ([..., r], f32). */
export function lora(kernels: Kernels, x: Tensor, weights: LoraWeights, y: Tensor): Tensor {
  const u = createTensor(kernels.device, [...x.shape.slice(0, -1), weights.a.shape[0]], 'f32', 'lora.u');
  submitPass(kernels, (pass) => encodeLora(kernels, pass, x, weights, u, y));
  return u;
}

function checkLora(x: Tensor, l: LoraWeights, u: Tensor, y: Tensor): { m: number; k: number; n: number; r: number } {
  if (l.a.shape.length !== 2 || l.b.shape.length !== 2) {
    throw new Error(`lora: A [${l.a.shape}] and B [${l.b.shape}] must be [r, in] and [out, r]`);
  }
  const [r, k] = l.a.shape;
  const [n, rb] = l.b.shape;
  if (rb !== r) throw new Error(`lora: B has shape [${l.b.shape}], expected [out, ${r}]`);
  if (l.a.dtype !== 'f32' || l.b.dtype !== 'f32') throw new Error(`lora: A and B must be f32 (master weights), not ${l.a.dtype}/${l.b.dtype}`);
  if (x.shape.length < 1 || x.shape[x.shape.length - 1] !== k) throw new Error(`lora: x has shape [${x.shape}], expected [..., ${k}]`);
  const lead = x.shape.slice(0, -1);
  expectShape('lora', u, [...lead, r], 'u');
  expectShape('lora', y, [...lead, n], 'y');
  if (u.dtype !== 'f32') throw new Error(`lora: u must be f32, not ${u.dtype}`);
  if (!Number.isFinite(l.scale)) throw new Error(`lora: scale ${l.scale} is not finite`);
  const distinct = new Set([x.buffer, l.a.buffer, l.b.buffer, u.buffer, y.buffer]);
  if (distinct.size !== 5) throw new Error('lora: x, A, B, u and y must be five buffers');
  return { m: numel(lead), k, n, r };
}
