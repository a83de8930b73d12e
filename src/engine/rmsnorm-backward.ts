// RMSNorm backward (shaders/rmsnorm-backward.wgsl): dx from dy through y = w · x · rstd, with the
// forward's rstd (encodeRmsnorm writes it). The weight is frozen in QLoRA: no dw here (the
// reference has it; on the GPU it would be a reduction over rows, a second kernel).
// Reference: reference/rmsnorm-backward.ts.
import { expectShape, numel, type DType, type Tensor } from './tensor.ts';
import { grid, withResidualType, type Kernels } from './kernels.ts';
import source from '../../shaders/rmsnorm-backward.wgsl?raw';

export interface RmsnormBackwardTensors {
  /** The forward's input [..., H]: the storage type, or f32 (the residual stream of the f16 mode). */
  x: Tensor;
  /** [H], the storage type. */
  w: Tensor;
  /** [...] f32, from encodeRmsnorm. */
  rstd: Tensor;
  /** Gradient of y, shape of x: the storage type or f32. */
  dy: Tensor;
  /** Output, shape and type of x. */
  dx: Tensor;
}

/**
 * Records dx = ∂L/∂x given dy = ∂L/∂y into `pass`; with `accumulate`, dx += that instead (dx
 * holds the residual stream's gradient, which flows around the norm). dx must not be x or dy.
 */
export function encodeRmsnormBackward(
  kernels: Kernels,
  pass: GPUComputePassEncoder,
  t: RmsnormBackwardTensors,
  opts: { accumulate?: boolean } = {},
): void {
  const { x, w, rstd, dy, dx } = t;
  const hidden = x.shape[x.shape.length - 1];
  if (!(hidden > 0)) throw new Error(`rmsnorm backward: x has shape [${x.shape}], expected [..., hidden] with hidden > 0`);
  const rows = numel(x.shape) / hidden;
  expectShape('rmsnorm backward', w, [hidden], 'w');
  expectShape('rmsnorm backward', rstd, x.shape.slice(0, -1), 'rstd');
  expectShape('rmsnorm backward', dy, x.shape, 'dy');
  expectShape('rmsnorm backward', dx, x.shape, 'dx');
  if (rstd.dtype !== 'f32') throw new Error(`rmsnorm backward: rstd must be f32, not ${rstd.dtype}`);
  if (dx.dtype !== x.dtype) throw new Error(`rmsnorm backward: dx is ${dx.dtype} but x is ${x.dtype}`);
  if (dy.dtype !== 'f32' && dy.dtype !== w.dtype) throw new Error(`rmsnorm backward: dy must be f32 or ${w.dtype}, not ${dy.dtype}`);
  if (dx.buffer === x.buffer || dx.buffer === dy.buffer) throw new Error('rmsnorm backward: dx must be a buffer of its own');
  const spec = withResidualType('rmsnorm_backward', source, w.dtype, x.dtype);
  const kernel = kernels.get({ ...withGradType(spec, dy.dtype), dtype: w.dtype });
  const buffers = [x.buffer, w.buffer, rstd.buffer, dy.buffer, dx.buffer];
  kernels.dispatch(pass, kernel, buffers, { rows, hidden, accumulate: opts.accumulate ? 1 : 0 }, grid(kernels, rows));
}

/** Adds `alias G = …` (the type of dy) ahead of a source, and to its cache name. */
function withGradType(spec: { name: string; source: string }, g: DType): { name: string; source: string } {
  return { name: `${spec.name}(G=${g})`, source: `alias G = ${g};\n${spec.source}` };
}
