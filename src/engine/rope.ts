// Rotary position embedding (shaders/rope.wgsl), in place on q or k, transformers' rotate_half
// convention (pairs (d, d + headDim/2)). The frequencies come in as an f32 buffer made on the CPU
// (arch.ts `ropeInverseFrequencies`, llama3 scaling included), so any scaling is the caller's.
import { type U32Tensor, expectShape, type Tensor } from './tensor.ts';
import { FLAT_WORKGROUP, grid, type Kernels } from './kernels.ts';
import source from '../../shaders/rope.wgsl?raw';

export interface RopeOptions {
  /** Rotate by -angle: the inverse rotation, which is also the backward pass (dx = Rᵀ · dy). */
  inverse?: boolean;
}

/**
 * Records the rotation of x [tokens, heads, headDim] in place: token t at positions[t] (u32,
 * restarting per document in packed rows), pair (d, d + headDim/2) by positions[t] · invFreq[d].
 * invFreq: f32 [headDim/2]. Call once for q [tokens, heads, headDim] and once for
 * k [tokens, kvHeads, headDim]. Accurate to a few f32 ulp for positions · invFreq < 205887.
 */
export function encodeRope(
  kernels: Kernels,
  pass: GPUComputePassEncoder,
  x: Tensor,
  positions: U32Tensor,
  invFreq: Tensor,
  options: RopeOptions = {},
): void {
  if (x.shape.length !== 3 || x.shape[2] % 2 !== 0) {
    throw new Error(`rope: x has shape [${x.shape}], expected [tokens, heads, headDim] with headDim even`);
  }
  const [tokens, heads, headDim] = x.shape;
  if (positions.length !== tokens) throw new Error(`rope: ${positions.length} positions for ${tokens} tokens`);
  expectShape('rope', invFreq, [headDim / 2], 'invFreq');
  if (invFreq.dtype !== 'f32') throw new Error(`rope: invFreq must be f32, not ${invFreq.dtype}`);
  const kernel = kernels.get({ name: 'rope', source, dtype: x.dtype });
  const half = headDim / 2;
  const pairs = tokens * heads * half;
  const params = { pairs, heads, half, sign: options.inverse ? -1 : 1 };
  const workgroups = grid(kernels, Math.ceil(pairs / FLAT_WORKGROUP));
  kernels.dispatch(pass, kernel, [x.buffer, positions.buffer, invFreq.buffer], params, workgroups);
}
