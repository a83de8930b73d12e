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
  const params = { pairs, heads, half, sign: options.inverse ? -1 : 1, kv_heads: 0, kv_pairs: 0, capacity: 0 };
  const workgroups = grid(kernels, Math.ceil(pairs / FLAT_WORKGROUP));
  kernels.dispatch(pass, kernel, [x.buffer, positions.buffer, invFreq.buffer], params, workgroups);
}

/** A layer's new k and v [tokens, kvHeads, headDim], and the caches [capacity, kvHeads, headDim] they go to. */
export interface KvAppend {
  k: Tensor;
  v: Tensor;
  kCache: Tensor;
  vCache: Tensor;
}

/**
 * Decode's q/k/v step in one dispatch: q [tokens, heads, headDim] rotated in place (as encodeRope),
 * k rotated into the K cache and v copied into the V cache, token t at cache row positions[t] (the
 * chat's cache holds position p in row p; rows past the capacity are not written). k and v
 * themselves are left as they were.
 */
export function encodeRopeAppend(kernels: Kernels, pass: GPUComputePassEncoder, q: Tensor, kv: KvAppend, positions: U32Tensor, invFreq: Tensor): void {
  if (q.shape.length !== 3 || q.shape[2] % 2 !== 0) throw new Error(`rope: q has shape [${q.shape}], expected [tokens, heads, headDim] with headDim even`);
  const [tokens, heads, headDim] = q.shape;
  const kvHeads = kv.k.shape[1];
  expectShape('rope', kv.k, [tokens, kvHeads, headDim], 'k');
  expectShape('rope', kv.v, [tokens, kvHeads, headDim], 'v');
  const capacity = kv.kCache.shape[0];
  expectShape('rope', kv.kCache, [capacity, kvHeads, headDim], 'K cache');
  expectShape('rope', kv.vCache, [capacity, kvHeads, headDim], 'V cache');
  for (const x of [kv.k, kv.v, kv.kCache, kv.vCache]) {
    if (x.dtype !== q.dtype) throw new Error(`rope: q, k, v and the caches must share a dtype, not ${q.dtype} and ${x.dtype}`);
  }
  if (positions.length !== tokens) throw new Error(`rope: ${positions.length} positions for ${tokens} tokens`);
  expectShape('rope', invFreq, [headDim / 2], 'invFreq');
  const half = headDim / 2;
  const pairs = tokens * heads * half;
  const kvPairs = tokens * kvHeads * half;
  const kernel = kernels.get({ name: 'rope', source, dtype: q.dtype, entryPoint: 'append' });
  const params = { pairs, heads, half, sign: 1, kv_heads: kvHeads, kv_pairs: kvPairs, capacity };
  const buffers: [number, GPUBuffer][] = [[0, q.buffer], [1, positions.buffer], [2, invFreq.buffer], [4, kv.k.buffer], [5, kv.v.buffer], [6, kv.kCache.buffer], [7, kv.vCache.buffer]];
  kernels.dispatchAt(pass, kernel, buffers, params, grid(kernels, Math.ceil((pairs + 2 * kvPairs) / FLAT_WORKGROUP)));
}
