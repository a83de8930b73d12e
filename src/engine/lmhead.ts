// The chunked lm_head (shaders/lmhead.wgsl): per-token cross-entropy over the vocabulary without
// a [tokens x V] logits tensor, and the full logits of a few rows (generation).
//   loss:   for each vocabulary chunk of Vc rows of E [V, H]: a fused tile kernel computes the
//           chunk's logits in registers and leaves per-row (max, Σ exp) partials and the target's
//           logit; a per-row kernel folds them into a running logsumexp. lse and
//           loss = lse - logit[target] per row come out (f32), loss 0 where the row's target is
//           not trained (id >= V, e.g. 0xffffffff).
//   logits: the same tiles written out for rows [firstRow, firstRow + rows) -> [rows, V] f32; one
//           row (decode) by a matrix-vector kernel instead (shaders/lmhead-row.wgsl).
// Each chunk binds only its rows of E (a buffer range), so E never has to fit one storage
// binding (maxStorageBufferBindingSize): Llama 3's 128256 x 4096 f16 is 1 GB.
// h and E have storage types of their own (lmHeadTypes): training runs f32 activations against
// an f16 E where the device has shader-f16, which halves E's 2.1 GB (8B, f32) without touching the
// f32 accumulation. Reference: reference/lmhead.ts.
import { type U32Tensor, expectShape, BYTES, createTensor, type DType, type Tensor } from './tensor.ts';
import { grid, sizeOf, submitPass, type Kernels } from './kernels.ts';
import { trackedBuffer } from './gpu-memory.ts';
import { encodeMmaMatmul, mmaApplies } from './matmul-mma.ts';
import { ROW_SUM_WGSL, rowSumSubgroups } from './nf4-gemv.ts';
import source from '../../shaders/lmhead.wgsl?raw';
import rowSource from '../../shaders/lmhead-row.wgsl?raw';

const TILE = 64;
/** Vocabulary rows per workgroup of the one-row kernel (shaders/lmhead-row.wgsl: a vec4's components). */
const ROW_KERNEL_VOCAB_ROWS = 4;
/** Vocabulary rows per chunk are a multiple of this, so every chunk's byte offset in E is a
 * multiple of 256 (the largest minStorageBufferOffsetAlignment WebGPU allows). */
export const LMHEAD_CHUNK_ALIGN = 256;
/** Default vocabulary rows per chunk: 128 tiles, 8 KiB of partials per row. */
export const LMHEAD_DEFAULT_CHUNK = 8192;

/**
 * The WGSL of an lm_head kernel with its storage types declared: `A` for h (the activations), `E`
 * for the matrix. The kernel's dtype (the loader's `T`, unused by these shaders) is f16 when either
 * is, so that `enable f16;` leads the module and a device without shader-f16 is refused.
 */
export function lmHeadTypes(kernel: string, src: string, h: DType, embed: DType): { name: string; source: string; dtype: DType } {
  return {
    name: `${kernel}(A=${h},E=${embed})`,
    source: `alias A = ${h};\nalias E = ${embed};\n${src}`,
    dtype: h === 'f16' || embed === 'f16' ? 'f16' : 'f32',
  };
}

/**
 * Vocabulary rows per chunk: `requested` rounded down to LMHEAD_CHUNK_ALIGN, such that a chunk's
 * rows of E (hidden values each, in E's storage type `embedDtype`) fit one storage binding.
 */
export function lmHeadChunkRows(kernels: Kernels, hidden: number, embedDtype: DType, requested = LMHEAD_DEFAULT_CHUNK): number {
  const limit = kernels.gpu.info.limits.maxStorageBufferBindingSize;
  const fit = Math.floor(limit / (hidden * BYTES[embedDtype]) / LMHEAD_CHUNK_ALIGN) * LMHEAD_CHUNK_ALIGN;
  const chunk = Math.min(Math.floor(requested / LMHEAD_CHUNK_ALIGN) * LMHEAD_CHUNK_ALIGN, fit);
  if (chunk < LMHEAD_CHUNK_ALIGN) throw new Error(`lm_head: a chunk of ${requested} rows of ${hidden} does not fit a binding`);
  return chunk;
}

/** Scratch of the loss path for up to `rows` rows and chunks of `chunk` vocabulary rows. */
export interface LmHeadScratch {
  rows: number;
  chunk: number;
  /** [rows, chunk / 64, 2] f32: per-tile max and Σ exp. */
  partial: GPUBuffer;
  /** [rows] f32: the logit of each row's target. */
  tlogit: GPUBuffer;
  /** [rows, 2] f32: running max and Σ exp. */
  run: GPUBuffer;
  /** [rows, chunk] f32: one chunk's logits, where the tensor-core GEMM computes them (GpuInfo.mmaF16). */
  logits?: GPUBuffer;
}

export function createLmHeadScratch(kernels: Kernels, rows: number, chunk: number): LmHeadScratch {
  if (!(chunk > 0 && chunk % LMHEAD_CHUNK_ALIGN === 0)) throw new Error(`lm_head: chunk ${chunk} is not a multiple of ${LMHEAD_CHUNK_ALIGN}`);
  const device = kernels.device;
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
  const buffer = (size: number, label: string) => trackedBuffer(device, { size: Math.max(4, size), usage, label }, 'scratch');
  const partialBytes = rows * (chunk / TILE) * 2 * 4;
  if (partialBytes > kernels.gpu.info.limits.maxStorageBufferBindingSize) {
    throw new Error(`lm_head: partials of ${rows} rows x ${chunk / TILE} tiles exceed a binding; use a smaller chunk`);
  }
  return {
    rows,
    chunk,
    partial: buffer(partialBytes, 'lmhead.partial'),
    tlogit: buffer(rows * 4, 'lmhead.tlogit'),
    run: buffer(rows * 8, 'lmhead.run'),
    logits: kernels.gpu.info.mmaF16 ? buffer(rows * chunk * 4, 'lmhead.logits') : undefined,
  };
}

export function destroyLmHeadScratch(s: LmHeadScratch): void {
  s.partial.destroy();
  s.tlogit.destroy();
  s.run.destroy();
  s.logits?.destroy();
}

export interface LmHeadLossTensors {
  /** [M, H], f32 or f16: the final norm's output. */
  h: Tensor;
  /** [V, H], f32 or f16 (its own storage type): lm_head.weight, or the embedding table when tied. */
  embed: Tensor;
  /** M target ids (labels already shifted: the id of the next token); an id >= V is not trained. */
  targets: U32Tensor;
  /** Output [M] f32: log Σ_v exp(logit_v) (the backward's softmax is exp(logit - lse)). */
  lse: Tensor;
  /** Output [M] f32: lse - logit[target], 0 where the target is not trained. */
  loss: Tensor;
}

/** Records the chunked lm_head + cross-entropy statistics (see the header) into `pass`. */
export function encodeLmHeadLoss(kernels: Kernels, pass: GPUComputePassEncoder, t: LmHeadLossTensors, scratch: LmHeadScratch): void {
  const { vocab, hidden } = checkEmbed(t.embed, t.h);
  const rows = t.h.shape[0];
  if (t.targets.length !== rows) throw new Error(`lm_head: ${t.targets.length} targets for ${rows} rows`);
  expectShape('lm_head', t.lse, [rows], 'lse');
  expectShape('lm_head', t.loss, [rows], 'loss');
  if (t.lse.dtype !== 'f32' || t.loss.dtype !== 'f32') throw new Error('lm_head: lse and loss must be f32');
  if (scratch.rows < rows) throw new Error(`lm_head: the scratch holds ${scratch.rows} rows, not ${rows}`);
  checkBinding(kernels, 'h', sizeOf(t.h.buffer));
  checkChunk(kernels, 'lm_head', scratch.chunk, t.embed);
  const spec = lmHeadTypes('lmhead', source, t.h.dtype, t.embed.dtype);
  const mma = !!scratch.logits && mmaApplies(kernels.gpu.info, { kind: 'dense', b: t.embed });
  const stats = kernels.get({ ...spec, entryPoint: mma ? 'stats_rows' : 'stats' });
  const combine = kernels.get({ ...spec, entryPoint: 'combine' });
  const tiles = scratch.chunk / TILE;
  for (let v0 = 0; v0 < vocab; v0 += scratch.chunk) {
    const chunkRows = Math.min(scratch.chunk, vocab - v0);
    const params = {
      row_partials: mma ? 1 : 0,
      rows,
      row0: 0,
      hidden,
      vocab,
      v0,
      chunk_rows: chunkRows,
      tiles,
      first: v0 === 0 ? 1 : 0,
      out_stride: 0,
      out_col0: 0,
    };
    if (mma) {
      // The chunk's logits on the tensor cores, then one workgroup per row for its statistics.
      const logits = { buffer: scratch.logits!, shape: [rows, chunkRows], dtype: 'f32' as const };
      const e = { kind: 'dense' as const, b: { ...t.embed, shape: [chunkRows, hidden] }, range: embedRange(t.embed, v0, chunkRows) };
      encodeMmaMatmul(kernels, pass, t.h, e, logits, { m: rows, nc: chunkRows, ki: hidden, transB: true });
      kernels.dispatchAt(pass, stats, [[2, { buffer: t.targets.buffer }], [3, { buffer: scratch.partial }], [4, { buffer: scratch.tlogit }], [8, { buffer: scratch.logits! }]], params, grid(kernels, rows));
    } else {
      kernels.dispatchAt(pass,
        stats,
        [
          [0, { buffer: t.h.buffer }],
          [1, embedRange(t.embed, v0, chunkRows)],
          [2, { buffer: t.targets.buffer }],
          [3, { buffer: scratch.partial }],
          [4, { buffer: scratch.tlogit }],
        ],
        params,
        [Math.ceil(chunkRows / TILE), Math.ceil(rows / TILE)],
      );
    }
    kernels.dispatchAt(pass,
      combine,
      [
        [2, { buffer: t.targets.buffer }],
        [3, { buffer: scratch.partial }],
        [4, { buffer: scratch.tlogit }],
        [5, { buffer: scratch.run }],
        [6, { buffer: t.lse.buffer }],
        [7, { buffer: t.loss.buffer }],
      ],
      params,
      grid(kernels, Math.ceil(rows / 64)),
    );
  }
}

/**
 * Records logits out[i, v] = h[firstRow + i] · E[v] for the rows of `out` ([rows, V] f32), chunk
 * by chunk over V. firstRow defaults to the last rows of h (generation: out [1, V] gets the last
 * position's logits).
 */
export function encodeLmHeadLogits(
  kernels: Kernels,
  pass: GPUComputePassEncoder,
  h: Tensor,
  embed: Tensor,
  out: Tensor,
  opts: { firstRow?: number; chunk?: number; subgroups?: boolean } = {},
): void {
  const { vocab, hidden } = checkEmbed(embed, h);
  if (out.shape.length !== 2 || out.shape[1] !== vocab || out.dtype !== 'f32') {
    throw new Error(`lm_head: out is ${out.dtype} [${out.shape}], expected f32 [rows, ${vocab}]`);
  }
  const rows = out.shape[0];
  const firstRow = opts.firstRow ?? h.shape[0] - rows;
  if (!(Number.isInteger(firstRow) && firstRow >= 0 && firstRow + rows <= h.shape[0])) {
    throw new Error(`lm_head: rows [${firstRow}, ${firstRow + rows}) are outside h's ${h.shape[0]}`);
  }
  checkBinding(kernels, 'h', sizeOf(h.buffer));
  checkBinding(kernels, 'out', sizeOf(out.buffer));
  if (rows === 1) {
    // Decode's row: as few dispatches as the binding size allows (one for Llama 3's 1 GB f16 E on
    // a GPU with 2 GB bindings; LMHEAD_DEFAULT_CHUNK gave 16), unless a chunk is asked for.
    const rowChunk = lmHeadChunkRows(kernels, hidden, embed.dtype, opts.chunk ?? Number.MAX_SAFE_INTEGER);
    encodeLogitsRow(kernels, pass, h, embed, out, firstRow, rowChunk, opts.subgroups);
    return;
  }
  const chunk = lmHeadChunkRows(kernels, hidden, embed.dtype, opts.chunk);
  const kernel = kernels.get({ ...lmHeadTypes('lmhead', source, h.dtype, embed.dtype), entryPoint: 'logits' });
  for (let v0 = 0; v0 < vocab; v0 += chunk) {
    const chunkRows = Math.min(chunk, vocab - v0);
    const params = {
      row_partials: 0,
      rows,
      row0: firstRow,
      hidden,
      vocab,
      v0,
      chunk_rows: chunkRows,
      tiles: 0,
      first: 0,
      out_stride: vocab,
      out_col0: v0,
    };
    kernels.dispatchAt(pass,
      kernel,
      [
        [0, { buffer: h.buffer }],
        [1, embedRange(embed, v0, chunkRows)],
        [8, { buffer: out.buffer }],
      ],
      params,
      [Math.ceil(chunkRows / TILE), Math.ceil(rows / TILE)],
    );
  }
}

/**
 * One row of h (decode) against E, chunk by chunk: the matrix-vector kernel of
 * shaders/lmhead-row.wgsl (16-byte loads where H % 8 == 0; `subgroups` false forces the
 * workgroup-memory sum).
 */
function encodeLogitsRow(
  kernels: Kernels,
  pass: GPUComputePassEncoder,
  h: Tensor,
  embed: Tensor,
  out: Tensor,
  row0: number,
  chunk: number,
  subgroupsOpt?: boolean,
): void {
  const [vocab, hidden] = embed.shape;
  const subgroups = rowSumSubgroups(kernels, subgroupsOpt);
  const spec = lmHeadTypes(
    subgroups ? 'lmhead-row(subgroups)' : 'lmhead-row',
    rowSource + ROW_SUM_WGSL[subgroups ? 'subgroups' : 'workgroup'],
    h.dtype,
    embed.dtype,
  );
  const kernel = kernels.get({
    ...spec,
    entryPoint: hidden % 8 === 0 ? 'logits_row' : 'logits_row_any',
    constants: { H_HALF: h.dtype === 'f16', E_HALF: embed.dtype === 'f16' },
  });
  for (let v0 = 0; v0 < vocab; v0 += chunk) {
    const chunkRows = Math.min(chunk, vocab - v0);
    kernels.dispatchAt(
      pass,
      kernel,
      [
        [0, { buffer: h.buffer }],
        [1, embedRange(embed, v0, chunkRows)],
        [2, { buffer: out.buffer }],
      ],
      { row0, hidden, chunk_rows: chunkRows, out_col0: v0 },
      grid(kernels, Math.ceil(chunkRows / ROW_KERNEL_VOCAB_ROWS)),
    );
  }
}

/** Allocates scratch and outputs, records encodeLmHeadLoss and submits it. */
export function lmHeadLoss(
  kernels: Kernels,
  h: Tensor,
  embed: Tensor,
  targets: U32Tensor,
  opts: { chunk?: number } = {},
): { lse: Tensor; loss: Tensor } {
  const rows = h.shape[0];
  const chunk = lmHeadChunkRows(kernels, h.shape[1], embed.dtype, opts.chunk);
  const scratch = createLmHeadScratch(kernels, rows, chunk);
  const lse = createTensor(kernels.device, [rows], 'f32', 'lmhead.lse');
  const loss = createTensor(kernels.device, [rows], 'f32', 'lmhead.loss');
  submitPass(kernels, (pass) => encodeLmHeadLoss(kernels, pass, { h, embed, targets, lse, loss }, scratch));
  // Destroying after submit is allowed: WebGPU frees the memory once the queued work is done.
  destroyLmHeadScratch(scratch);
  return { lse, loss };
}

/** Allocates out [rows, V] f32 (default: the last row of h), records encodeLmHeadLogits and submits it. */
export function lmHeadLogits(kernels: Kernels, h: Tensor, embed: Tensor, opts: { rows?: number; firstRow?: number; chunk?: number; subgroups?: boolean } = {}): Tensor {
  const out = createTensor(kernels.device, [opts.rows ?? 1, embed.shape[0]], 'f32', 'lmhead.logits');
  submitPass(kernels, (pass) => encodeLmHeadLogits(kernels, pass, h, embed, out, opts));
  return out;
}

function checkEmbed(embed: Tensor, h: Tensor): { vocab: number; hidden: number } {
  if (embed.shape.length !== 2) throw new Error(`lm_head: E has shape [${embed.shape}], expected [vocab, hidden]`);
  const [vocab, hidden] = embed.shape;
  if (h.shape.length !== 2 || h.shape[1] !== hidden) throw new Error(`lm_head: h has shape [${h.shape}], expected [rows, ${hidden}]`);
  return { vocab, hidden };
}

/** Throws unless `chunk` rows of E fit one storage binding (a scratch sized for a narrower E). */
export function checkChunk(kernels: Kernels, what: string, chunk: number, embed: Tensor): void {
  const bytes = chunk * embed.shape[1] * BYTES[embed.dtype];
  const limit = kernels.gpu.info.limits.maxStorageBufferBindingSize;
  if (bytes > limit) {
    throw new Error(`${what}: a chunk of ${chunk} rows of ${embed.dtype} E (${bytes} B) exceeds maxStorageBufferBindingSize ${limit}; size the chunk with lmHeadChunkRows for E's dtype`);
  }
}

/** The byte range of E's rows [v0, v0 + rows): offsets are multiples of 256 (chunks are). */
export function embedRange(embed: Tensor, v0: number, rows: number): GPUBufferBinding {
  const rowBytes = embed.shape[1] * BYTES[embed.dtype];
  const offset = v0 * rowBytes;
  const size = Math.min(Math.ceil((rows * rowBytes) / 4) * 4, sizeOf(embed.buffer) - offset);
  return { buffer: embed.buffer, offset, size };
}

function checkBinding(kernels: Kernels, what: string, size: number): void {
  const limit = kernels.gpu.info.limits.maxStorageBufferBindingSize;
  if (size > limit) throw new Error(`lm_head: ${what} (${size} B) exceeds maxStorageBufferBindingSize ${limit}`);
}

