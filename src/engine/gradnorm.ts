// Global gradient-norm clipping (shaders/gradnorm.wgsl), as torch.nn.utils.clip_grad_norm_ with
// norm_type 2: norm = ||all gradients||₂, then every gradient *= min(1, max_norm / (norm + 1e-6)).
// Two-pass reduction: partial sums of squares (one slot per 4096 elements of a tensor, 8 tensors a
// dispatch), then one workgroup folds them into (norm, coef, Σ g²) in a small f32 buffer, which
// stays on the GPU for the scale pass (or AdamW, which takes the coefficient itself) and can be read
// back for the step's metrics (and the skip of non-finite steps).
// Reference: reference/gradnorm.ts.
import { FLAT_WORKGROUP, grid, type Kernels } from './kernels.ts';
import { createTensor, numel, readTensor, type Tensor } from './tensor.ts';
import source from '../../shaders/gradnorm.wgsl?raw';

/** Elements per partial sum (the shader's workgroup of 256 x 16). */
export const GRADNORM_CHUNK = 4096;
/** Gradient tensors one partial-sums dispatch takes (the shader's g, g1 .. g7). */
export const GRADNORM_BATCH = 8;
/** The norm's epsilon in clip_grad_norm_: coef = max_norm / (norm + 1e-6). */
export const GRADNORM_EPS = 1e-6;
const F32_MAX = 3.4028234663852886e38;

export interface GradNormScratch {
  /** Partial sums: one f32 per GRADNORM_CHUNK elements of each tensor. */
  partials: GPUBuffer;
  capacity: number;
  /**
   * [4] f32: norm, clip coefficient, sum of squares, and the count of finite norms measured with this
   * scratch (the trainer's applied updates: AdamW reads it for its bias correction; setGradNormCount).
   */
  result: Tensor;
}

/** Partial-sum slots the gradients need. */
export function gradNormSlots(grads: readonly Tensor[]): number {
  return grads.reduce((s, t) => s + Math.ceil(numel(t.shape) / GRADNORM_CHUNK), 0);
}

/** Scratch for these gradients (or for `slots` partial sums). */
export function createGradNormScratch(kernels: Kernels, grads: readonly Tensor[] | number): GradNormScratch {
  const capacity = typeof grads === 'number' ? grads : gradNormSlots(grads);
  const partials = kernels.device.createBuffer({
    size: Math.max(4, capacity * 4),
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    label: 'gradnorm.partials',
  });
  // A new buffer is zeros (WebGPU): the count starts at 0.
  return { partials, capacity, result: createTensor(kernels.device, [4], 'f32', 'gradnorm.result') };
}

/** Sets the count of finite norms (result element 3): a trainer restored from a checkpoint. */
export function setGradNormCount(device: GPUDevice, s: GradNormScratch, count: number): void {
  if (!(Number.isInteger(count) && count >= 0 && count < 2 ** 24)) throw new Error(`gradnorm: the count must be an integer in [0, 2^24), not ${count}`);
  device.queue.writeBuffer(s.result.buffer, 12, new Float32Array([count]));
}

export function destroyGradNormScratch(s: GradNormScratch): void {
  s.partials.destroy();
  s.result.buffer.destroy();
}

/**
 * Records the global norm of `grads` (f32 tensors) and the clip coefficient
 * min(1, maxNorm / (norm + 1e-6)) into scratch.result (maxNorm Infinity: coefficient 1).
 */
export function encodeGradNorm(kernels: Kernels, pass: GPUComputePassEncoder, grads: readonly Tensor[], scratch: GradNormScratch, maxNorm = Infinity): void {
  if (grads.length === 0) throw new Error('gradnorm: no gradients');
  for (const t of grads) if (t.dtype !== 'f32') throw new Error(`gradnorm: gradients must be f32, not ${t.dtype}`);
  if (new Set(grads.map((t) => t.buffer)).size !== grads.length) throw new Error('gradnorm: a gradient buffer is listed twice');
  const slots = gradNormSlots(grads);
  if (slots > scratch.capacity) throw new Error(`gradnorm: ${slots} partial sums, the scratch holds ${scratch.capacity}`);
  if (!(maxNorm > 0)) throw new Error(`gradnorm: max norm must be > 0, not ${maxNorm}`);
  const partial = kernels.get({ name: 'gradnorm', source, dtype: 'f32', entryPoint: 'partial_sums' });
  let offset = 0;
  for (let b = 0; b < grads.length; b += GRADNORM_BATCH) {
    const batch = grads.slice(b, b + GRADNORM_BATCH);
    const params: Record<string, number> = { n: 0, offset, count: 0, max_norm: 0 };
    const bindings: [number, GPUBuffer][] = [[1, scratch.partials]];
    let groups = 0;
    for (let k = 0; k < GRADNORM_BATCH; k++) {
      const t = batch[k];
      const n = t ? numel(t.shape) : 0;
      params[`n${k}`] = n;
      params[`w${k}`] = groups;
      bindings.push([k === 0 ? 0 : k + 3, t?.buffer ?? kernels.placeholder()]);
      groups += Math.ceil(n / GRADNORM_CHUNK);
    }
    kernels.dispatchAt(pass, partial, bindings, params, grid(kernels, groups));
    offset += groups;
  }
  const max = Math.min(maxNorm, F32_MAX);
  kernels.dispatch(pass, kernel(kernels, 1), [grads[0].buffer, scratch.partials, scratch.result.buffer], { n: 0, offset: 0, count: slots, max_norm: max }, [1]);
}

/** Records g *= scratch.result's coefficient for every gradient (after encodeGradNorm). */
export function encodeClipGrads(kernels: Kernels, pass: GPUComputePassEncoder, grads: readonly Tensor[], scratch: GradNormScratch): void {
  const scale = kernel(kernels, 2);
  for (const t of grads) {
    if (t.dtype !== 'f32') throw new Error(`gradnorm: gradients must be f32, not ${t.dtype}`);
    const n = numel(t.shape);
    kernels.dispatch(pass, scale, [t.buffer, scratch.partials, scratch.result.buffer], { n, offset: 0, count: 0, max_norm: 0 }, grid(kernels, Math.ceil(n / FLAT_WORKGROUP)));
  }
}

/** clip_grad_norm_: records the norm, then the scaling of every gradient. */
export function encodeClipGradNorm(kernels: Kernels, pass: GPUComputePassEncoder, grads: readonly Tensor[], scratch: GradNormScratch, maxNorm: number): void {
  encodeGradNorm(kernels, pass, grads, scratch, maxNorm);
  encodeClipGrads(kernels, pass, grads, scratch);
}

/** Reads (norm, coef, Σ g², count) back as the queue has them at the call (readTensor: the copy is submitted before the first await). */
export async function readGradNorm(device: GPUDevice, scratch: GradNormScratch): Promise<{ norm: number; coef: number; sumSquares: number; count: number }> {
  const [norm, coef, sumSquares, count] = await readTensor(device, scratch.result);
  return { norm, coef, sumSquares, count };
}

function kernel(kernels: Kernels, mode: number) {
  return kernels.get({ name: 'gradnorm', source, dtype: 'f32', constants: { MODE: mode } });
}
