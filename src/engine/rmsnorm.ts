// RMSNorm forward (shaders/rmsnorm.wgsl): y = w · x / sqrt(mean(x²) + eps) over rows of x,
// with the numerics of transformers' LlamaRMSNorm (see the shader's header).
import { expectShape, numel, type Tensor } from './tensor.ts';
import { grid, withResidualType, type Kernels } from './kernels.ts';
import source from '../../shaders/rmsnorm.wgsl?raw';

/**
 * Records y = RMSNorm(x; w) over the last dimension H of x ([..., H]), and rstd[row] =
 * 1 / sqrt(mean(x²) + eps) (f32, one per row: [...], what the backward pass needs).
 * w [H] and y (shape of x) have the storage type; x has it too, or is f32 (the residual stream
 * of the f16 mode). eps: rms_norm_eps of config.json (1e-5 for Llama 3).
 */
export function encodeRmsnorm(
  kernels: Kernels,
  pass: GPUComputePassEncoder,
  x: Tensor,
  w: Tensor,
  y: Tensor,
  rstd: Tensor,
  eps: number,
): void {
  const hidden = x.shape[x.shape.length - 1];
  if (!(hidden > 0)) throw new Error(`rmsnorm: x has shape [${x.shape}], expected [..., hidden] with hidden > 0`);
  const rows = numel(x.shape) / hidden;
  expectShape('rmsnorm', w, [hidden], 'w');
  expectShape('rmsnorm', y, x.shape, 'y');
  expectShape('rmsnorm', rstd, x.shape.slice(0, -1), 'rstd');
  if (y.dtype !== w.dtype) throw new Error(`rmsnorm: y is ${y.dtype} but w is ${w.dtype}`);
  if (rstd.dtype !== 'f32') throw new Error(`rmsnorm: rstd must be f32, not ${rstd.dtype}`);
  if (!(eps >= 0)) throw new Error(`rmsnorm: eps must be >= 0, not ${eps}`);
  const spec = withResidualType('rmsnorm', source, w.dtype, x.dtype);
  const kernel = kernels.get({ ...spec, dtype: w.dtype });
  kernels.dispatch(pass, kernel, [x.buffer, w.buffer, y.buffer, rstd.buffer], { rows, hidden, eps }, grid(kernels, rows));
}
