// Embedding lookup (shaders/embedding.wgsl): x = E[ids], the first step of the Llama forward.
import { FLAT_WORKGROUP, grid, withResidualType, type Kernels } from './kernels.ts';
import { expectShape, type Tensor, type U32Tensor } from './tensor.ts';
import source from '../../shaders/embedding.wgsl?raw';

/**
 * Records out[t, :] = table[ids[t], :] for table [vocab, hidden] and out [tokens, hidden].
 * An id >= vocab (e.g. a padding sentinel such as 0xffffffff) gives a row of zeros rather than
 * reading out of bounds. The table has a storage type of its own: `out` may be f32 while the
 * table is f16 (the f32 residual stream, in the f16 mode and in training with an f16 E), exact.
 * The whole table is one binding: vocab · hidden values must fit maxStorageBufferBindingSize
 * (Llama 3 8B in f16: 128256 · 4096 · 2 B = 1.05 GB) and vocab · hidden < 2^32. A table larger
 * than one binding would be split into row ranges, one dispatch each (not done yet).
 */
export function encodeEmbedding(kernels: Kernels, pass: GPUComputePassEncoder, table: Tensor, ids: U32Tensor, out: Tensor): void {
  if (table.shape.length !== 2) throw new Error(`embedding: table has shape [${table.shape}], expected [vocab, hidden]`);
  const [vocab, hidden] = table.shape;
  expectShape('embedding', out, [ids.length, hidden], 'out');
  if (vocab * hidden >= 2 ** 32) throw new Error(`embedding: table [${table.shape}] has 2^32 values or more`);
  const spec = withResidualType('embedding', source, table.dtype, out.dtype);
  const kernel = kernels.get({ ...spec, dtype: table.dtype });
  const n = ids.length * hidden;
  const workgroups = grid(kernels, Math.ceil(n / FLAT_WORKGROUP));
  kernels.dispatch(pass, kernel, [table.buffer, ids.buffer, out.buffer], { n, hidden, vocab }, workgroups);
}
