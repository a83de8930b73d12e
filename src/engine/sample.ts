// Next-token sampling on the GPU (shaders/sample.wgsl): repetition penalty, greedy or temperature
// + top-k + top-p, then an inverse-CDF draw with a uniform number the caller supplies (seeded on
// the CPU, e.g. rng(seed) from src/util/random.ts), so a seed gives the same tokens every run.
// Names and semantics follow transformers' generate(): temperature, top_k, top_p,
// repetition_penalty. One workgroup per row of logits; no sort (threshold searches, see the
// shader). Reference: reference/sample.ts.
import { grid, submitPass, type Kernels } from './kernels.ts';
import { trackedBuffer } from './gpu-memory.ts';
import type { GpuLimits } from './gpu.ts';
import { expectShape, readU32, uploadTensor, type Tensor, type U32Tensor } from './tensor.ts';
import source from '../../shaders/sample.wgsl?raw';

export interface SampleOptions {
  /** 0: greedy (the first index of the maximum; do_sample = false). Otherwise > 0. */
  temperature: number;
  /** Keep the top_k highest scores (ties kept); 0 or >= V: off. */
  topK?: number;
  /** Keep the smallest set of top tokens whose probability reaches top_p; 1: off. */
  topP?: number;
  /** transformers' repetition_penalty over `prev` ids; 1: off. */
  repetitionPenalty?: number;
}

/** The chat tab's starting sampling settings (the store's defaults; the bench's chat decode). */
export const CHAT_SAMPLING: Required<SampleOptions> = { temperature: 0.7, topP: 0.9, topK: 0, repetitionPenalty: 1.1 };

/** Per-row scratch: 2 V f32 (scaled logits, then their exponentials). */
export interface SampleScratch {
  rows: number;
  vocab: number;
  buffer: GPUBuffer;
}

export function createSampleScratch(kernels: Kernels, rows: number, vocab: number): SampleScratch {
  const size = rows * vocab * 2 * 4;
  if (size > kernels.gpu.info.limits.maxStorageBufferBindingSize) {
    throw new Error(`sample: scratch for ${rows} rows of ${vocab} exceeds maxStorageBufferBindingSize`);
  }
  const buffer = trackedBuffer(kernels.device, { size: Math.max(4, size), usage: GPUBufferUsage.STORAGE, label: 'sample.scratch' }, 'scratch');
  return { rows, vocab, buffer };
}

/**
 * Records the choice of one token per row of `logits` ([rows, V] f32, or [V] for one row) into
 * `out` (rows u32). `prev`: the ids the repetition penalty applies to (the prompt and the tokens
 * generated so far; length 0 for none; ids >= V are skipped, so a buffer of fixed length can hold
 * the history so far and 0xffffffff after it); `u`: [rows] f32 uniform numbers in [0, 1).
 */
export function encodeSample(
  kernels: Kernels,
  pass: GPUComputePassEncoder,
  logits: Tensor,
  prev: U32Tensor,
  u: Tensor,
  out: U32Tensor,
  scratch: SampleScratch,
  opts: SampleOptions,
): void {
  if (logits.dtype !== 'f32' || logits.shape.length < 1 || logits.shape.length > 2) {
    throw new Error(`sample: logits are ${logits.dtype} [${logits.shape}], expected f32 [rows, vocab] or [vocab]`);
  }
  const vocab = logits.shape[logits.shape.length - 1];
  const rows = logits.shape.length === 2 ? logits.shape[0] : 1;
  expectShape('sample', u, [rows], 'u');
  if (u.dtype !== 'f32') throw new Error(`sample: u must be f32, not ${u.dtype}`);
  if (out.length !== rows) throw new Error(`sample: out holds ${out.length} ids for ${rows} rows`);
  if (scratch.rows < rows || scratch.vocab !== vocab) {
    throw new Error(`sample: the scratch is for ${scratch.rows} rows of ${scratch.vocab}, not ${rows} of ${vocab}`);
  }
  const p = checkOptions(opts);
  const kernel = kernels.get({ name: 'sample', source, dtype: 'f32', constants: { WG: sampleWorkgroupSize(kernels.gpu.info.limits) } });
  const params = {
    vocab,
    rows,
    n_prev: prev.length,
    top_k: p.topK > 0 && p.topK < vocab ? p.topK : 0,
    temperature: p.temperature,
    top_p: p.topP,
    penalty: p.repetitionPenalty,
  };
  kernels.dispatch(pass, kernel, [logits.buffer, prev.buffer, u.buffer, scratch.buffer, out.buffer], params, grid(kernels, rows));
}

/**
 * The sampler's invocations per workgroup: the largest of 1024, 512, 256 within the device's limits
 * (its workgroup memory holds 10 words per invocation, and a few hundred more). A row's sweeps are
 * latency-bound: more invocations keep more loads in flight.
 */
export function sampleWorkgroupSize(limits: Pick<GpuLimits, 'maxComputeInvocationsPerWorkgroup' | 'maxComputeWorkgroupSizeX' | 'maxComputeWorkgroupStorageSize'>): number {
  for (const wg of [1024, 512]) {
    const bytes = 10 * 4 * wg + 2048; // red [7][WG], red_i [WG], cand_key and cand_e [WG]; red2 [7][32], red2_i [32] and a few scalars (1,072 bytes)
    if (wg <= limits.maxComputeInvocationsPerWorkgroup && wg <= limits.maxComputeWorkgroupSizeX && bytes <= limits.maxComputeWorkgroupStorageSize) return wg;
  }
  return 256; // within WebGPU's default limits (16 KiB of workgroup memory)
}

/**
 * Samples one token per row and reads the ids back: logits [rows, V] (or [V]), one u per row.
 * Allocates its scratch; a generation loop would keep one and call encodeSample.
 */
export async function sampleTokens(
  kernels: Kernels,
  logits: Tensor,
  prev: ArrayLike<number>,
  u: ArrayLike<number>,
  opts: SampleOptions,
): Promise<Uint32Array> {
  const device = kernels.device;
  const rows = logits.shape.length === 2 ? logits.shape[0] : 1;
  const vocab = logits.shape[logits.shape.length - 1];
  const scratch = createSampleScratch(kernels, rows, vocab);
  const tp = idsBuffer(device, Uint32Array.from(prev), 'sample.prev');
  const tu = uploadTensor(device, Float32Array.from(u), [u.length], 'f32', 'sample.u', 'scratch');
  const out = createSampleOutput(device, rows);
  submitPass(kernels, (pass) => encodeSample(kernels, pass, logits, tp, tu, out, scratch, opts));
  const ids = await readU32(device, out);
  for (const b of [scratch.buffer, tp.buffer, tu.buffer, out.buffer]) b.destroy();
  return ids;
}

/** One token from logits [V] (or [1, V]) with one uniform number u. */
export async function sampleToken(kernels: Kernels, logits: Tensor, prev: ArrayLike<number>, u: number, opts: SampleOptions): Promise<number> {
  return (await sampleTokens(kernels, logits, prev, [u], opts))[0];
}

/** Allocates the [rows] u32 output buffer of encodeSample. */
export function createSampleOutput(device: GPUDevice, rows: number): U32Tensor {
  return idsBuffer(device, new Uint32Array(rows), 'sample.out');
}

/** u32 values in a new storage buffer, counted by the memory accountant (scratch). */
function idsBuffer(device: GPUDevice, values: Uint32Array, label: string): U32Tensor {
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
  const buffer = trackedBuffer(device, { size: Math.max(4, values.byteLength), usage, label }, 'scratch');
  if (values.byteLength > 0) device.queue.writeBuffer(buffer, 0, values);
  return { buffer, length: values.length };
}

/** Validated options with the defaults filled in (shared by the reference). */
export function checkOptions(opts: SampleOptions): Required<SampleOptions> {
  const { temperature, topK = 0, topP = 1, repetitionPenalty = 1 } = opts;
  if (!(Number.isFinite(temperature) && temperature >= 0)) throw new Error(`sample: temperature must be >= 0, not ${temperature}`);
  if (!(Number.isInteger(topK) && topK >= 0)) throw new Error(`sample: top_k must be an integer >= 0, not ${topK}`);
  if (!(topP >= 0 && topP <= 1)) throw new Error(`sample: top_p must be in [0, 1], not ${topP}`);
  if (!(Number.isFinite(repetitionPenalty) && repetitionPenalty > 0)) {
    throw new Error(`sample: repetition_penalty must be > 0, not ${repetitionPenalty}`);
  }
  return { temperature, topK, topP, repetitionPenalty };
}
