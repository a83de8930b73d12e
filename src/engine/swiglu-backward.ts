// SwiGLU backward (shaders/swiglu-backward.wgsl): dgate and dup from dout through
// out = silu(gate) · up (encodeSwiglu). Reference: reference/swiglu-backward.ts.
import { expectShape, numel, type Tensor } from './tensor.ts';
import { FLAT_WORKGROUP, grid, type Kernels } from './kernels.ts';
import source from '../../shaders/swiglu-backward.wgsl?raw';

/**
 * Records dgate = dout · up · silu'(gate) and dup = dout · silu(gate) (all one storage type, one
 * shape; math in f32). Pass dgate = gate and dup = up to compute in place (the activations are
 * overwritten by their gradients); otherwise all five buffers must differ.
 */
export function encodeSwigluBackward(
  kernels: Kernels,
  pass: GPUComputePassEncoder,
  gate: Tensor,
  up: Tensor,
  dout: Tensor,
  dgate: Tensor,
  dup: Tensor,
): void {
  const what = 'swiglu backward';
  for (const [name, t] of Object.entries({ up, dout, dgate, dup })) {
    expectShape(what, t, gate.shape, name);
    if (t.dtype !== gate.dtype) throw new Error(`${what}: ${name} is ${t.dtype} but gate is ${gate.dtype}`);
  }
  const n = numel(gate.shape);
  const workgroups = grid(kernels, Math.ceil(n / FLAT_WORKGROUP));
  const inplace = dgate.buffer === gate.buffer && dup.buffer === up.buffer;
  const buffers = inplace ? [gate.buffer, up.buffer, dout.buffer] : [gate.buffer, up.buffer, dout.buffer, dgate.buffer, dup.buffer];
  if (new Set(buffers).size !== buffers.length) {
    throw new Error(`${what}: gate, up, dout, dgate and dup must be five buffers, or dgate = gate and dup = up (in place)`);
  }
  const kernel = kernels.get({ name: 'swiglu_backward', source, dtype: gate.dtype, entryPoint: inplace ? 'inplace' : 'main' });
  kernels.dispatch(pass, kernel, buffers, { n }, workgroups);
}
