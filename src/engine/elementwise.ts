// Elementwise kernels (shaders/elementwise.wgsl): SwiGLU and the (scaled) add of the residual
// stream and of LoRA.
import { FLAT_WORKGROUP, grid, withResidualType, type Kernels } from './kernels.ts';
import { expectShape, numel, type DType, type Tensor } from './tensor.ts';
import source from '../../shaders/elementwise.wgsl?raw';

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
  // Four elements an invocation where they divide n: the 8B's SwiGLU 156 us -> ~100 at 2 B values (scalar: ~2.3 TB/s).
  const vec4 = n % 4 === 0;
  const kernel = kernels.get({ ...spec, dtype, entryPoint: vec4 ? `${entryPoint}4` : entryPoint });
  const buffers = tensors.map((t) => t.buffer);
  const items = vec4 ? n / 4 : n;
  kernels.dispatch(pass, kernel, buffers, { n: items, scale }, grid(kernels, Math.ceil(items / FLAT_WORKGROUP)));
}
