// Elementwise kernels (shaders/elementwise.wgsl): SwiGLU and the (scaled) add of the residual
// stream and of LoRA. Also the small helpers the other forward kernels share: the 2-D workgroup
// grid for large arrays, the residual-type alias `R`, and one-pass submission.
import type { Kernels } from './kernels.ts';
import { numel, type DType, type Tensor } from './tensor.ts';
import source from '../../shaders/elementwise.wgsl?raw';

/** Invocations per workgroup of the flat (one value per invocation) kernels. */
export const FLAT_WORKGROUP = 256;

/**
 * A grid of at least `count` workgroups: [count, 1] up to the per-dimension limit, else 2-D.
 * Shaders rebuild the flat workgroup index as wg.y * nwg.x + wg.x and skip the excess.
 */
export function grid(kernels: Kernels, count: number): [number, number] {
  const limit = kernels.gpu.info.limits.maxComputeWorkgroupsPerDimension;
  const n = Math.max(1, count);
  return n <= limit ? [n, 1] : [limit, Math.ceil(n / limit)];
}

/**
 * Source with `alias R = …` ahead: the type of the residual-stream tensors of a kernel. It is the
 * storage type T, or f32 when T is f16 (DESIGN.md: f32 residual stream in the f16 mode).
 */
export function withResidualType(kernel: string, src: string, dtype: DType, residual: DType): { name: string; source: string } {
  if (residual !== 'f32' && residual !== dtype) {
    throw new Error(`${kernel}: residual tensors must be f32 or the storage type ${dtype}, not ${residual}`);
  }
  return { name: `${kernel}(R=${residual})`, source: `alias R = ${residual};\n${src}` };
}

/** Records `record` into one compute pass and submits it now (tests, self-tests, one-offs). */
export function submitPass(kernels: Kernels, record: (pass: GPUComputePassEncoder) => void): void {
  const encoder = kernels.device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  try {
    record(pass);
  } finally {
    pass.end(); // a throw leaves nothing submitted
  }
  kernels.device.queue.submit([encoder.finish()]);
}

/** Throws unless `t` has exactly `shape`; `what` names it in the message. */
export function expectShape(kernel: string, t: Tensor, shape: readonly number[], what: string): void {
  if (t.shape.join() !== shape.join()) throw new Error(`${kernel}: ${what} has shape [${t.shape}], expected [${shape}]`);
}

/** Records out = silu(gate) * up (all one storage type, same shape; math in f32). */
export function encodeSwiglu(kernels: Kernels, pass: GPUComputePassEncoder, gate: Tensor, up: Tensor, out: Tensor): void {
  expectShape('swiglu', up, gate.shape, 'up');
  expectShape('swiglu', out, gate.shape, 'out');
  if (up.dtype !== gate.dtype || out.dtype !== gate.dtype) {
    throw new Error(`swiglu: mixed storage types ${gate.dtype}/${up.dtype}/${out.dtype}`);
  }
  if (out.buffer === gate.buffer || out.buffer === up.buffer || up.buffer === gate.buffer) {
    throw new Error('swiglu: gate, up and out must be three buffers');
  }
  dispatchFlat(kernels, pass, 'swiglu', gate.dtype, gate.dtype, [gate, up, out], numel(gate.shape), 1);
}

/**
 * Records out = a + scale · b, math in f32. `out` may be `a` itself (in place: the residual
 * stream x += h, or LoRA's y += s · (B A x)). a and out are f32 or the storage type; b is the
 * storage type. scale = 1 gives exactly a + b.
 */
export function encodeAdd(kernels: Kernels, pass: GPUComputePassEncoder, a: Tensor, b: Tensor, out: Tensor, scale = 1): void {
  expectShape('add', b, a.shape, 'b');
  expectShape('add', out, a.shape, 'out');
  if (out.dtype !== a.dtype) throw new Error(`add: out is ${out.dtype} but a is ${a.dtype}`);
  if (b.buffer === a.buffer || b.buffer === out.buffer) throw new Error('add: b must not be a or out');
  const n = numel(a.shape);
  if (out.buffer === a.buffer) dispatchFlat(kernels, pass, 'add_inplace', b.dtype, a.dtype, [a, b], n, scale);
  else dispatchFlat(kernels, pass, 'add', b.dtype, a.dtype, [a, b, out], n, scale);
}

function dispatchFlat(
  kernels: Kernels,
  pass: GPUComputePassEncoder,
  entryPoint: string,
  dtype: DType,
  residual: DType,
  tensors: Tensor[],
  n: number,
  scale: number,
): void {
  const spec = withResidualType('elementwise', source, dtype, residual);
  const kernel = kernels.get({ ...spec, dtype, entryPoint });
  const buffers = tensors.map((t) => t.buffer);
  kernels.dispatch(pass, kernel, buffers, { n, scale }, grid(kernels, Math.ceil(n / FLAT_WORKGROUP)));
}
