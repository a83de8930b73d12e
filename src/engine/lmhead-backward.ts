// The fused, chunked lm_head + cross-entropy backward (shaders/lmhead-backward.wgsl): given the
// forward's lse (encodeLmHeadLoss), dh = Σ_chunks (softmax(logits_chunk) - onehot(target)) / N ·
// E_chunk, each chunk's logits recomputed; masked rows (target >= V, as in the forward) get 0.
// N (the normaliser) is the number of trained tokens of the whole accumulated batch, so batch 8
// x accumulation 2 gives the gradients of batch 16. Memory: a [rows, chunk] f32 scratch, never
// [rows, V]. h and E have storage types of their own, as in the forward (lmhead.ts lmHeadTypes).
// With an f16 E on a device with f16 subgroup matrices both products of a chunk run on the tensor
// cores (matmul-mma.ts) and only dlogits is computed here (grad_rows).
// Reference: reference/lmhead-backward.ts.
import { type U32Tensor, expectShape, createTensor, type DType, type Tensor } from './tensor.ts';
import { grid, submitPass, type Kernels } from './kernels.ts';
import { encodeMmaMatmul, mmaApplies } from './matmul-mma.ts';
import { trackedBuffer } from './gpu-memory.ts';
import { checkChunk, embedRange, LMHEAD_CHUNK_ALIGN, lmHeadChunkRows, lmHeadTypes } from './lmhead.ts';
import source from '../../shaders/lmhead-backward.wgsl?raw';

const TILE = 64;
/** Default bytes of the [rows, chunk] f32 scratch the chunk size is chosen for. */
export const LMHEAD_BACKWARD_SCRATCH_BYTES = 64 * 2 ** 20;

export interface LmHeadBackwardTensors {
  /** [M, H], f32 or f16: the final norm's output (the forward's h). */
  h: Tensor;
  /** [V, H], f32 or f16 (its own storage type): lm_head.weight or the tied embedding table (frozen). */
  embed: Tensor;
  /** M target ids; an id >= V is not trained (its row gets dh = 0). */
  targets: U32Tensor;
  /** [M] f32: the forward's log Σ_v exp(logit_v). */
  lse: Tensor;
  /** Output [M, H]: f32 (recommended) or h's storage type. */
  dh: Tensor;
}

export interface LmHeadBackwardScratch {
  rows: number;
  /** Vocabulary rows per chunk: a multiple of LMHEAD_CHUNK_ALIGN. */
  chunk: number;
  /** [rows, chunk] f32: one chunk's dlogits. */
  g: GPUBuffer;
}

/**
 * Vocabulary rows per chunk for `rows` rows: the largest multiple of LMHEAD_CHUNK_ALIGN whose
 * [rows, chunk] f32 scratch fits `scratchBytes` and a storage binding, and whose E rows fit a
 * binding (lmHeadChunkRows, with E's storage type `embedDtype`), at most `requested` (default:
 * the forward's default chunk).
 */
export function lmHeadBackwardChunkRows(
  kernels: Kernels,
  rows: number,
  hidden: number,
  embedDtype: DType,
  opts: { requested?: number; scratchBytes?: number } = {},
): number {
  const limit = kernels.gpu.info.limits.maxStorageBufferBindingSize;
  const bytes = Math.min(opts.scratchBytes ?? LMHEAD_BACKWARD_SCRATCH_BYTES, limit);
  const fit = Math.floor(bytes / (Math.max(1, rows) * 4) / LMHEAD_CHUNK_ALIGN) * LMHEAD_CHUNK_ALIGN;
  const chunk = Math.min(lmHeadChunkRows(kernels, hidden, embedDtype, opts.requested), fit);
  if (chunk < LMHEAD_CHUNK_ALIGN) throw new Error(`lm_head backward: ${rows} rows x ${LMHEAD_CHUNK_ALIGN} columns exceed the scratch budget of ${bytes} bytes`);
  return chunk;
}

export function createLmHeadBackwardScratch(kernels: Kernels, rows: number, chunk: number): LmHeadBackwardScratch {
  if (!(chunk > 0 && chunk % LMHEAD_CHUNK_ALIGN === 0)) throw new Error(`lm_head backward: chunk ${chunk} is not a multiple of ${LMHEAD_CHUNK_ALIGN}`);
  const size = rows * chunk * 4;
  if (size > kernels.gpu.info.limits.maxStorageBufferBindingSize) throw new Error(`lm_head backward: a scratch of ${rows} x ${chunk} exceeds a binding`);
  const g = trackedBuffer(
    kernels.device,
    { size: Math.max(4, size), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST, label: 'lmhead_backward.g' },
    'scratch',
  );
  return { rows, chunk, g };
}

/**
 * Records dh = ∂L/∂h for L = Σ_(trained rows) loss_r / normalizer into `pass` (two dispatches per
 * vocabulary chunk). With `accumulate`, dh += that instead. normalizer: the trained tokens of the
 * whole accumulated batch (> 0).
 */
export function encodeLmHeadBackward(
  kernels: Kernels,
  pass: GPUComputePassEncoder,
  t: LmHeadBackwardTensors,
  scratch: LmHeadBackwardScratch,
  opts: { normalizer: number; accumulate?: boolean },
): void {
  const what = 'lm_head backward';
  if (t.embed.shape.length !== 2) throw new Error(`${what}: E has shape [${t.embed.shape}], expected [vocab, hidden]`);
  const [vocab, hidden] = t.embed.shape;
  if (t.h.shape.length !== 2 || t.h.shape[1] !== hidden) throw new Error(`${what}: h has shape [${t.h.shape}], expected [rows, ${hidden}]`);
  const rows = t.h.shape[0];
  if (t.targets.length !== rows) throw new Error(`${what}: ${t.targets.length} targets for ${rows} rows`);
  expectShape(what, t.lse, [rows], 'lse');
  expectShape(what, t.dh, [rows, hidden], 'dh');
  if (t.lse.dtype !== 'f32') throw new Error(`${what}: lse must be f32, not ${t.lse.dtype}`);
  if (scratch.rows < rows) throw new Error(`${what}: the scratch holds ${scratch.rows} rows, not ${rows}`);
  if (t.dh.dtype !== 'f32' && t.dh.dtype !== t.h.dtype) throw new Error(`${what}: dh must be f32 or h's ${t.h.dtype}, not ${t.dh.dtype}`);
  checkChunk(kernels, what, scratch.chunk, t.embed);
  if (!(opts.normalizer > 0 && Number.isFinite(opts.normalizer))) throw new Error(`${what}: normalizer must be > 0, not ${opts.normalizer}`);
  if (new Set([t.h.buffer, t.embed.buffer, t.dh.buffer, t.lse.buffer]).size !== 4) throw new Error(`${what}: dh must be a buffer of its own`);
  const limit = kernels.gpu.info.limits.maxStorageBufferBindingSize;
  for (const [name, size] of [['h', t.h.buffer.size], ['dh', t.dh.buffer.size]] as const) {
    if (size > limit) throw new Error(`${what}: ${name} (${size} B) exceeds maxStorageBufferBindingSize ${limit}`);
  }
  const types = lmHeadTypes('lmhead_backward', source, t.h.dtype, t.embed.dtype);
  const spec = { name: `${types.name}(R=${t.dh.dtype})`, source: `alias R = ${t.dh.dtype};\n${types.source}`, dtype: types.dtype };
  const mma = mmaApplies(kernels.gpu.info, { kind: 'dense', b: t.embed });
  const grad = kernels.get({ ...spec, entryPoint: mma ? 'grad_rows' : 'grad' });
  const dh = kernels.get({ ...spec, entryPoint: 'dh_main' });
  for (let v0 = 0; v0 < vocab; v0 += scratch.chunk) {
    const chunkRows = Math.min(scratch.chunk, vocab - v0);
    const params = {
      rows,
      hidden,
      vocab,
      v0,
      chunk_rows: chunkRows,
      g_stride: mma ? chunkRows : scratch.chunk,
      accumulate: v0 > 0 || opts.accumulate ? 1 : 0,
      inv_n: 1 / opts.normalizer,
    };
    const e = embedRange(t.embed, v0, chunkRows);
    const g = { buffer: scratch.g };
    if (mma) {
      // On the tensor cores: the chunk's logits into g, dlogits in place, then dh (+)= g · E_chunk.
      const gt = { buffer: scratch.g, shape: [rows, chunkRows], dtype: 'f32' as const };
      const eChunk = { kind: 'dense' as const, b: { ...t.embed, shape: [chunkRows, hidden] }, range: e };
      encodeMmaMatmul(kernels, pass, t.h, eChunk, gt, { m: rows, nc: chunkRows, ki: hidden, transB: true });
      kernels.dispatchAt(pass, grad, [[2, { buffer: t.targets.buffer }], [3, { buffer: t.lse.buffer }], [4, g]], params, grid(kernels, Math.ceil((rows * chunkRows) / 256)));
      encodeMmaMatmul(kernels, pass, gt, eChunk, t.dh, { m: rows, nc: hidden, ki: chunkRows, transB: false, accumulate: params.accumulate === 1 });
      continue;
    }
    kernels.dispatchAt(pass, grad, [[0, { buffer: t.h.buffer }], [1, e], [2, { buffer: t.targets.buffer }], [3, { buffer: t.lse.buffer }], [4, g]], params, [
      Math.ceil(chunkRows / TILE),
      Math.ceil(rows / TILE),
    ]);
    kernels.dispatchAt(pass, dh, [[1, e], [4, g], [5, { buffer: t.dh.buffer }]], params, [Math.ceil(hidden / TILE), Math.ceil(rows / TILE)]);
  }
}

/** Allocates the scratch and dh ([M, H], f32 unless `dhDtype`), records encodeLmHeadBackward and submits it. */
export function lmHeadBackward(
  kernels: Kernels,
  h: Tensor,
  embed: Tensor,
  targets: U32Tensor,
  lse: Tensor,
  opts: { normalizer: number; chunk?: number; dhDtype?: DType },
): Tensor {
  const [rows, hidden] = h.shape;
  const chunk = lmHeadBackwardChunkRows(kernels, rows, hidden, embed.dtype, { requested: opts.chunk });
  const scratch = createLmHeadBackwardScratch(kernels, rows, chunk);
  const dh = createTensor(kernels.device, [rows, hidden], opts.dhDtype ?? 'f32', 'lmhead_backward.dh');
  submitPass(kernels, (pass) => encodeLmHeadBackward(kernels, pass, { h, embed, targets, lse, dh }, scratch, opts));
  scratch.g.destroy(); // freed once the queued work is done
  return dh;
}
