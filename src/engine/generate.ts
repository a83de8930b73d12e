// Generation (chat): a KV cache per layer, prefill of the prompt in chunks through the same forward
// as training (forward.ts, with the cache: roped k and v written at their positions, attention from
// position `past` on), then one token per step (the NF4 GEMV path), sampled on the GPU
// (sample.ts: temperature, top-k, top-p, repetition penalty, a seeded uniform per step). The
// sampled id goes from the sampler's output straight into the next step's input on the GPU; the
// CPU reads it back each step to stream it and to check the stop ids. LoRA on or off per call.
import { createActivations, destroyActivations, forwardTensors, type Activations } from './activations.ts';
import type { ModelArch } from './arch.ts';
import { type U32Tensor, BYTES, createTensor, readTensor, type DType, type Tensor } from './tensor.ts';
import { encodeForwardPass, type ForwardRun, type KvCacheView } from './forward.ts';
import type { CapturedDispatches, Kernels } from './kernels.ts';
import { trackedBuffer } from './gpu-memory.ts';
import { ATTENTION_DECODE_MAX_LORA_R, ATTENTION_DECODE_MAX_TQ, attentionDecodeBytes, decodeSplitsInUse } from './attention.ts';
import type { LoraSet } from './lora-weights.ts';
import type { ModelWeights } from './model.ts';
import { checkOptions, createSampleScratch, encodeSample, type SampleOptions, type SampleScratch } from './sample.ts';
import { rng } from '../util/random.ts';

/** A history slot not yet filled (the sampler skips ids >= V). */
const NO_ID = 0xffffffff;

/** K and V of every layer, [capacity, kvHeads, headDim] in the activation dtype; `length` filled. */
export interface KvCache {
  k: GPUBuffer[];
  v: GPUBuffer[];
  /** Scratch of the decode attention's key splits (attention.ts decodePartials). */
  partials: GPUBuffer;
  /** The decode attention's per-head shares of o_proj's LoRA u (attention.ts oLora), for up to ATTENTION_DECODE_MAX_LORA_R. */
  loraShares: GPUBuffer;
  capacity: number;
  dtype: DType;
  length: number;
}

export function createKvCache(device: GPUDevice, arch: ModelArch, dtype: DType, capacity: number): KvCache {
  const size = capacity * arch.kvHeads * arch.headDim * BYTES[dtype];
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC;
  const make = (what: string, i: number) => trackedBuffer(device, { size: Math.max(4, size), usage, label: `kv.${what}.${i}` }, 'activations');
  return {
    k: Array.from({ length: arch.layers }, (_, i) => make('k', i)),
    v: Array.from({ length: arch.layers }, (_, i) => make('v', i)),
    partials: trackedBuffer(device, { size: attentionDecodeBytes(arch.heads, arch.headDim, capacity), usage: GPUBufferUsage.STORAGE, label: 'kv.partials' }, 'scratch'),
    loraShares: trackedBuffer(device, { size: loraSharesBytes(arch.heads), usage: GPUBufferUsage.STORAGE, label: 'kv.loraShares' }, 'scratch'),
    capacity,
    dtype,
    length: 0,
  };
}

export function kvCacheBytes(arch: ModelArch, dtype: DType, capacity: number): number {
  return 2 * arch.layers * capacity * arch.kvHeads * arch.headDim * BYTES[dtype] + attentionDecodeBytes(arch.heads, arch.headDim, capacity) + loraSharesBytes(arch.heads);
}

/** Bytes of the per-head shares of o_proj's LoRA u: [heads, up to ATTENTION_DECODE_MAX_TQ rows, up to ATTENTION_DECODE_MAX_LORA_R] f32. */
function loraSharesBytes(heads: number): number {
  return heads * ATTENTION_DECODE_MAX_TQ * ATTENTION_DECODE_MAX_LORA_R * 4;
}

export function destroyKvCache(c: KvCache): void {
  for (const b of [...c.k, ...c.v, c.partials, c.loraShares]) b.destroy();
  c.length = 0;
}

export interface GenerateOptions extends Partial<SampleOptions> {
  /** max_new_tokens. */
  maxNewTokens: number;
  /** Ids that end the answer (config eos_token_id(s), the template's end-of-turn token). The
   * stop token itself is neither streamed nor part of `tokens`. */
  stopIds?: readonly number[];
  /** Seed of the per-step uniforms (sampling only; greedy ignores it). Default 0. */
  seed?: number;
  signal?: AbortSignal;
  /** Called with each new token, in order; awaited (backpressure for a slow consumer). */
  onToken?: (id: number, index: number) => void | Promise<void>;
}

export type StopReason = 'eos' | 'length' | 'aborted' | 'context';

export interface GenerateResult {
  /** The generated ids, without the stop token. */
  tokens: number[];
  stop: StopReason;
  /** The id that stopped generation, when stop is 'eos'. */
  stopId: number | null;
  promptTokens: number;
  prefillSeconds: number;
  decodeSeconds: number;
  /** Generated tokens per second of decoding (0 with fewer than two tokens). */
  decodeTokensPerSecond: number;
}

export interface GeneratorOptions {
  /** Tokens the KV cache holds: prompt + answer. */
  maxContext: number;
  /** Prompt tokens per prefill forward (the arena's capacity); default 128. */
  prefillChunk?: number;
  /**
   * Records every replayed decode step afresh too and throws where the two differ (tests): what a
   * decode step records may change with its position only through decodeSplitsInUse.
   */
  checkReplay?: boolean;
}

/**
 * Decode steps submitted before the oldest one's token is read back (each step's input is the id
 * the one before it sampled, on the GPU): the GPU keeps a step queued while the CPU waits for a
 * readback and records the next one.
 */
const STEPS_IN_FLIGHT = 2;

/** The key of the base model (no adapter) among decode's captured steps. */
const NO_ADAPTER = {};

/**
 * A model ready to chat: its KV cache, the forward arena of one prefill chunk, the sampler's
 * buffers. One generation at a time; each `generate` starts from an empty cache.
 */
export class Generator {
  readonly cache: KvCache;
  readonly prefillChunk: number;
  private acts: Activations;
  private readonly logits: Tensor;
  private readonly scratch: SampleScratch;
  private readonly prev: GPUBuffer;
  private readonly u: Tensor;
  private readonly out: U32Tensor;
  private readonly staging: GPUBuffer[];
  private nextStaging = 0;
  private busy = false;
  private readonly checkReplay: boolean;
  /**
   * A decode step's forward (one sampled token) as captured once, by adapter and the attention's
   * splits in use: every other part of its recording (pipelines, bind groups, grids) is the same
   * at every position, the per-token values living in buffers, so later steps replay it.
   */
  private steps = new WeakMap<object, Map<number, CapturedDispatches>>();

  constructor(
    readonly kernels: Kernels,
    readonly model: ModelWeights,
    opts: GeneratorOptions,
  ) {
    const { arch, dtype } = model;
    const device = kernels.device;
    if (!(Number.isInteger(opts.maxContext) && opts.maxContext > 1)) throw new Error(`generate: maxContext ${opts.maxContext} must be an integer > 1`);
    this.prefillChunk = Math.min(opts.prefillChunk ?? 128, opts.maxContext);
    this.checkReplay = opts.checkReplay ?? false;
    this.cache = createKvCache(device, arch, dtype, opts.maxContext);
    this.acts = this.arena(0);
    this.logits = createTensor(device, [1, arch.vocabSize], 'f32', 'generate.logits', 'scratch');
    this.scratch = createSampleScratch(kernels, 1, arch.vocabSize);
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC;
    this.prev = trackedBuffer(device, { size: 4 * opts.maxContext, usage, label: 'generate.prev' }, 'scratch');
    this.u = createTensor(device, [1], 'f32', 'generate.u', 'scratch');
    this.out = { buffer: trackedBuffer(device, { size: 4, usage, label: 'generate.out' }, 'scratch'), length: 1 };
    // Held for the generator's life (unlike a readback's staging buffer), so it is counted too.
    this.staging = Array.from({ length: STEPS_IN_FLIGHT }, (_, i) => trackedBuffer(device, { size: 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, label: `generate.read.${i}` }, 'scratch'));
  }

  /** Bytes of GPU memory this holds (KV cache, arena, sampler). */
  get bytes(): number {
    return kvCacheBytes(this.model.arch, this.model.dtype, this.cache.capacity) + this.acts.bytes + this.scratch.buffer.size + this.prev.size;
  }

  /** Empties the KV cache. */
  reset(): void {
    this.cache.length = 0;
  }

  /**
   * Appends `tokens` to the KV cache (forwards of up to prefillChunk tokens at positions
   * length .. length + n - 1) and leaves the logits of the last one in the logits buffer.
   */
  feed(tokens: readonly number[], lora: LoraSet | null, logits = true): void {
    if (tokens.length === 0) return;
    if (this.cache.length + tokens.length > this.cache.capacity) {
      throw new Error(`generate: ${this.cache.length + tokens.length} tokens exceed the context of ${this.cache.capacity}`);
    }
    for (let at = 0; at < tokens.length; at += this.prefillChunk) {
      const chunk = tokens.slice(at, at + this.prefillChunk);
      const enc = this.kernels.device.createCommandEncoder();
      this.encodeStep(enc, Uint32Array.from(chunk), chunk.length, lora, logits && at + chunk.length === tokens.length);
      this.kernels.device.queue.submit([enc.finish()]);
    }
  }

  /** The logits [V] after the last token fed (tests, inspection). */
  readLogits(): Promise<Float32Array> {
    return readTensor(this.kernels.device, this.logits);
  }

  /**
   * Generates up to maxNewTokens after `prompt` (token ids, the chat template applied), with the
   * LoRA set (or the base model with null). Stops at a stop id, at maxNewTokens, when the signal
   * aborts, or when the context is full.
   */
  async generate(prompt: readonly number[], lora: LoraSet | null, options: GenerateOptions): Promise<GenerateResult> {
    if (this.busy) throw new Error('generate: this generator is already generating');
    if (prompt.length === 0) throw new Error('generate: the prompt is empty');
    if (prompt.length >= this.cache.capacity) {
      throw new Error(`generate: the prompt has ${prompt.length} tokens; the context holds ${this.cache.capacity} (prompt + answer)`);
    }
    const sample = checkOptions({ temperature: 0, ...options });
    const stopIds = new Set(options.stopIds ?? []);
    const next = rng(options.seed ?? 0);
    const penalised = sample.repetitionPenalty !== 1;
    const device = this.kernels.device;
    const result: GenerateResult = {
      tokens: [],
      stop: 'length',
      stopId: null,
      promptTokens: prompt.length,
      prefillSeconds: 0,
      decodeSeconds: 0,
      decodeTokensPerSecond: 0,
    };
    if (options.signal?.aborted) return { ...result, stop: 'aborted' };
    this.busy = true;
    try {
      this.reset();
      // The whole history buffer, the prompt then "no id" (the sampler skips ids >= V): its length,
      // and so the sampler's parameters, stay the same from token to token.
      if (penalised) device.queue.writeBuffer(this.prev, 0, Uint32Array.from({ length: this.cache.capacity }, (_, i) => (i < prompt.length ? prompt[i] : NO_ID)));
      const t0 = performance.now();
      // Every chunk but the last fills the cache; the last one's forward is followed by the sampler.
      const last = Math.floor((prompt.length - 1) / this.prefillChunk) * this.prefillChunk;
      this.feed(prompt.slice(0, last), lora, false);
      // Steps are submitted one ahead of the token being read back: a step's input is the id the
      // step before it sampled, already on the GPU, so the CPU records step k + 1 while the GPU
      // runs step k. A step launched past a stop is discarded (drained below).
      const inflight = [this.step(Uint32Array.from(prompt.slice(last)), lora, sample, next(), penalised)];
      let launched = 1;
      let t1 = 0;
      for (;;) {
        while (inflight.length < STEPS_IN_FLIGHT && launched < options.maxNewTokens && this.cache.length < this.cache.capacity && !options.signal?.aborted) {
          inflight.push(this.step(null, lora, sample, next(), penalised));
          launched++;
        }
        const id = await inflight.shift()!;
        if (t1 === 0) {
          t1 = performance.now();
          result.prefillSeconds = (t1 - t0) / 1000;
        }
        if (stopIds.has(id)) {
          result.stop = 'eos';
          result.stopId = id;
          break;
        }
        result.tokens.push(id);
        await options.onToken?.(id, result.tokens.length - 1);
        if (result.tokens.length >= options.maxNewTokens) break;
        if (options.signal?.aborted) {
          result.stop = 'aborted';
          break;
        }
        if (inflight.length === 0) {
          result.stop = 'context';
          break;
        }
      }
      for (const discarded of inflight) {
        await discarded;
        this.cache.length--;
      }
      result.decodeSeconds = (performance.now() - t1) / 1000;
      const decoded = result.tokens.length - 1; // the first token came with the prefill
      result.decodeTokensPerSecond = decoded > 0 && result.decodeSeconds > 0 ? decoded / result.decodeSeconds : 0;
      return result;
    } finally {
      this.busy = false;
    }
  }

  destroy(): void {
    destroyKvCache(this.cache);
    destroyActivations(this.acts);
    for (const b of [this.logits.buffer, this.scratch.buffer, this.prev, this.u.buffer, this.out.buffer, ...this.staging]) b.destroy();
  }

  /**
   * One forward of `ids` (null: the one id the last step sampled, already in the arena's input on
   * the GPU), the sampler on its last logits, and the sampled id copied to the next input, to the
   * penalty's history and to the CPU.
   */
  private async step(ids: Uint32Array | null, lora: LoraSet | null, opts: SampleOptions, u: number, penalised: boolean): Promise<number> {
    const device = this.kernels.device;
    const n = ids ? ids.length : 1;
    const history = this.cache.length + n; // ids fed so far: the sampled one goes after them
    device.queue.writeBuffer(this.u.buffer, 0, Float32Array.of(u));
    const enc = device.createCommandEncoder();
    this.encodeStep(enc, ids, n, lora, true);
    const pass = enc.beginComputePass();
    const prev: U32Tensor = { buffer: this.prev, length: penalised ? this.cache.capacity : 0 };
    encodeSample(this.kernels, pass, this.logits, prev, this.u, this.out, this.scratch, opts);
    pass.end();
    enc.copyBufferToBuffer(this.out.buffer, 0, this.acts.ids, 0, 4);
    if (penalised && history < this.cache.capacity) enc.copyBufferToBuffer(this.out.buffer, 0, this.prev, history * 4, 4);
    // Each step in flight reads back through its own staging buffer.
    const staging = this.staging[this.nextStaging];
    this.nextStaging = (this.nextStaging + 1) % STEPS_IN_FLIGHT;
    enc.copyBufferToBuffer(this.out.buffer, 0, staging, 0, 4);
    device.queue.submit([enc.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    const id = new Uint32Array(staging.getMappedRange().slice(0))[0];
    staging.unmap();
    return id;
  }

  /** Records the forward of n tokens at the cache's end (ids written first unless null). */
  private encodeStep(enc: GPUCommandEncoder, ids: Uint32Array | null, n: number, lora: LoraSet | null, logits: boolean): void {
    const r = lora?.spec.r ?? 0;
    if (r > 0 && this.acts.options.loraR !== r) {
      destroyActivations(this.acts);
      this.acts = this.arena(r);
      this.steps = new WeakMap(); // their bind groups hold the old arena
    }
    const queue = this.kernels.device.queue;
    const past = this.cache.length;
    if (ids) queue.writeBuffer(this.acts.ids, 0, ids);
    queue.writeBuffer(this.acts.positions, 0, Uint32Array.from({ length: n }, (_, i) => past + i));
    // The forward's tensors and options are built only where it is recorded (a replayed step needs none).
    const record = (pass: GPUComputePassEncoder) => {
      const run: ForwardRun = { ctx: { kernels: this.kernels, model: this.model, lora }, acts: this.acts };
      const cache: KvCacheView = { k: this.cache.k, v: this.cache.v, partials: this.cache.partials, loraShares: this.cache.loraShares, capacity: this.cache.capacity, past };
      encodeForwardPass(pass, run, forwardTensors(this.acts, 1, n), { cache, logits: logits ? { out: this.logits, firstRow: n - 1 } : undefined });
    };
    const pass = enc.beginComputePass();
    if (ids === null && logits) this.kernels.replay(pass, this.decodeStep(lora, past, record));
    else record(pass);
    pass.end();
    this.cache.length = past + n;
  }

  /** The captured forward of a decode step at position `past` (`steps`), captured now if new. */
  private decodeStep(lora: LoraSet | null, past: number, record: (pass: GPUComputePassEncoder) => void): CapturedDispatches {
    const key = lora ?? NO_ADAPTER;
    let bySplits = this.steps.get(key);
    if (!bySplits) this.steps.set(key, (bySplits = new Map()));
    const splits = decodeSplitsInUse(past + 1);
    const kept = bySplits.get(splits);
    if (!kept) {
      const captured = this.kernels.capture(record);
      bySplits.set(splits, captured);
      return captured;
    }
    if (this.checkReplay && !this.kernels.sameDispatches(kept, this.kernels.capture(record))) {
      throw new Error(`generate: the decode step at position ${past} records other dispatches than the one replayed for it`);
    }
    return kept;
  }

  private arena(loraR: number): Activations {
    return createActivations(this.kernels, this.model.arch, this.model.dtype, {
      batch: 1,
      seqLen: this.prefillChunk,
      checkpoints: false,
      loss: false,
      loraR,
    });
  }
}
