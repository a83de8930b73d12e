// Engine figures at real model shapes with random weights (no download): the fused NF4 matmul at
// a training shape, prefill and decode through the chat Generator, and QLoRA training steps
// (r = 16 on all seven targets, gradient checkpointing, 8-bit AdamW) at seq 2048 batch 1.
// Weights are random but real in size: every layer gets its own NF4 buffers (copies of one
// quantized random matrix per shape), so GPU memory is what the model would hold. Memory is the
// high-water mark of every buffer the device created in the scenario (a census of
// createBuffer/destroy), not only those the accountant tracks; the accountant's own high-water
// mark is reported beside it (the two differ by per-dispatch uniforms and readback staging only).
// Training keeps f32 activations with embed_tokens / lm_head in f16 where the device has
// shader-f16 (model.ts embedDtypeFor), as the trainer does.
import { LINEAR_NAMES, parseModelConfig, ropeInverseFrequenciesF32, type LinearName, type ModelArch } from '../../src/engine/arch.ts';
import type { PackedBatch } from '../../src/engine/forward.ts';
import { createForwardRun, destroyForwardRun, encodeForward, writeBatch } from '../../src/engine/forward.ts';
import { Generator } from '../../src/engine/generate.ts';
import { CHAT_SAMPLING, type SampleOptions } from '../../src/engine/sample.ts';
import type { Gpu } from '../../src/engine/gpu.ts';
import type { Kernels } from '../../src/engine/kernels.ts';
import type { LinearWeight } from '../../src/engine/linear.ts';
import { createLora, destroyLora, type LoraSet } from '../../src/engine/lora-weights.ts';
import { embedDtypeFor, type LayerWeights, type ModelWeights } from '../../src/engine/model.ts';
import { gpuMemory, type MemoryCategory } from '../../src/engine/gpu-memory.ts';
import { createNf4Weight, destroyNf4, quantizeNf4Gpu, type Nf4GpuWeight } from '../../src/engine/nf4.ts';
import { encodeNf4Matmul, encodeNf4MatmulBackward } from '../../src/engine/nf4-matmul.ts';
import { createTensor, numel, uploadTensor, BYTES, type DType, type Tensor } from '../../src/engine/tensor.ts';
import { createTrainer, destroyTrainer, submitStep } from '../../src/engine/train/step.ts';
import { encodeBackward } from '../../src/engine/train/backward.ts';
import { randomF32 } from '../../src/util/random.ts';
import { LOAD_CONFIGS } from './load.ts';
import { median, rotationCopies, timePass } from './timing.ts';

export interface EngineBenchOptions {
  shapes: string[];
  seqLen: number;
  /** Timed training steps after one warm-up; 0 skips training (its figures are NaN). */
  trainSteps: number;
  decodeTokens: number;
  /** Decoder layers (default: the real model's). */
  layers?: number;
  vocab?: number;
}

export interface Nf4MatmulResult {
  op: 'nf4-matmul';
  /** [tokens, in, out]. */
  shape: number[];
  direction: 'forward' | 'backward-dx' | 'gemv-f16';
  /** gemv: GB/s of NF4 weight bytes (codes and f32 absmax) read. */
  gbps?: number;
  ms: number;
  tflops: number;
}

export interface ModelBenchResult {
  op: 'model';
  shape: string;
  layers: number;
  vocab: number;
  prefillTokens: number;
  prefillTokensPerSecond: number;
  decodeTokensPerSecond: number;
  /** CPU time recording one decode step's commands (createCommandEncoder to submit). */
  decodeRecordMsPerToken: number;
  /** GPU time of one decode step's passes (timestamps), when the adapter has timestamp-query. */
  decodeGpuMsPerToken?: number;
  /** Decode after a prompt of about seqLen tokens (the KV cache nearly full). */
  longContextDecodeTokensPerSecond: number;
  /** Decode with the chat tab's default sampling and an adapter (r 16, seven targets) on: the best of CHAT_RUNS. */
  chatDecodeTokensPerSecond: number;
  /** Each run's tokens/s (run-to-run spread on a shared machine). */
  chatDecodeRuns: number[];
  chatDecodeRecordMsPerToken: number;
  /** GPU time of one chat step's passes (timestamps): with the CPU's recording, what bounds chat. */
  chatGpuMsPerToken?: number;
  /** GPU ms per decoded token by kernel (pipeline label): greedy after a 16-token prompt and after the long one; chat's (adapter, sampling). */
  decodeKernelMs?: { short: Record<string, number>; long: Record<string, number>; chat: Record<string, number> };
  inferenceDtype: DType;
  inferencePeakBytes: number;
  trainSeqLen: number;
  trainStepSeconds: number;
  trainTokensPerSecond: number;
  /** Model FLOPs (forward + backward to the inputs, recompute not counted; see benchModel) per second, in TFLOP/s. */
  trainModelTflops: number;
  trainPeakBytes: number;
  /** The memory accountant's high-water mark over the same training steps (gpu-memory.ts). */
  trainTrackedPeakBytes: number;
  /** Storage of embed_tokens / lm_head in training (activations are f32). */
  trainEmbedDtype: DType;
  trainLosses: number[];
  /** GPU ms per kernel (pipeline label) of one training step, where dispatches can be timed one by one. */
  trainKernelMs?: Record<string, number>;
  /** Model TFLOP/s over the f32 matmul peak measured in the same run (when `matmul` ran first). */
  trainMfuOfF32Peak?: number;
  /** PyTorch's figures for the same shape (--torch-models) and ours / theirs. */
  torch?: {
    prefillTokensPerSecond: number;
    decodeTokensPerSecond: number;
    trainTokensPerSecond: number;
    trainPeakBytes: number;
    prefillRatio: number;
    decodeRatio: number;
    trainRatio: number;
  };
}

/** Live and peak bytes of the buffers a device creates (patches createBuffer; destroy is idempotent). */
class BufferCensus {
  live = 0;
  peak = 0;
  constructor(device: GPUDevice) {
    const create = device.createBuffer.bind(device);
    device.createBuffer = (d: GPUBufferDescriptor) => {
      const b = create(d);
      const size = b.size;
      this.live += size;
      this.peak = Math.max(this.peak, this.live);
      const destroy = b.destroy.bind(b);
      let gone = false;
      b.destroy = () => {
        if (!gone) this.live -= size;
        gone = true;
        destroy();
      };
      return b;
    };
  }
  resetPeak(): void {
    this.peak = this.live;
  }
}

const censuses = new WeakMap<GPUDevice, BufferCensus>();
function census(device: GPUDevice): BufferCensus {
  let c = censuses.get(device);
  if (!c) censuses.set(device, (c = new BufferCensus(device)));
  return c;
}

/** A tensor of `shape` filled with a random pattern of at most 1M values, tiled by buffer copies. */
export function randomTensor(kernels: Kernels, shape: number[], dtype: DType, scale: number, seed: number, label: string, category: MemoryCategory = 'scratch'): Tensor {
  const n = numel(shape);
  const patternElems = Math.min(n, 1 << 20);
  const pattern = uploadTensor(kernels.device, randomF32(patternElems, seed).map((v) => v * scale), [patternElems], dtype, `${label}.pattern`);
  const t = createTensor(kernels.device, shape, dtype, label, category);
  const enc = kernels.device.createCommandEncoder();
  const patternBytes = patternElems * BYTES[dtype];
  for (let at = 0; at < n * BYTES[dtype]; at += patternBytes) {
    enc.copyBufferToBuffer(pattern.buffer, 0, t.buffer, at, Math.min(patternBytes, t.buffer.size - at) & ~3);
  }
  kernels.device.queue.submit([enc.finish()]);
  pattern.buffer.destroy();
  return t;
}

function copyNf4(kernels: Kernels, from: Nf4GpuWeight, label: string): Nf4GpuWeight {
  const w = createNf4Weight(kernels.device, from.shape, { blocksize: from.blocksize, label });
  const enc = kernels.device.createCommandEncoder();
  enc.copyBufferToBuffer(from.words, 0, w.words, 0, from.words.size);
  enc.copyBufferToBuffer(from.absmax, 0, w.absmax, 0, from.absmax.size);
  kernels.device.queue.submit([enc.finish()]);
  return w;
}

export function randomNf4(kernels: Kernels, out: number, inp: number, seed: number): Nf4GpuWeight {
  const dense = randomTensor(kernels, [out, inp], 'f32', 1 / Math.sqrt(inp), seed, 'bench.dense');
  const w = quantizeNf4Gpu(kernels, dense, { label: 'bench.nf4' });
  dense.buffer.destroy();
  return w;
}

/**
 * A Llama model of `arch`'s shapes with random NF4 linears, activations (and norms) in `dtype`,
 * embed_tokens / lm_head in `embedDtype` (default: `dtype`); everything it holds is in `owned`.
 */
function randomModel(kernels: Kernels, arch: ModelArch, dtype: DType, embedDtype: DType = dtype): { model: ModelWeights; nf4: Nf4GpuWeight[] } {
  const owned: GPUBuffer[] = [];
  const nf4: Nf4GpuWeight[] = [];
  const keep = (t: Tensor) => (owned.push(t.buffer), t);
  const ones = (n: number, label: string) => keep(uploadTensor(kernels.device, new Float32Array(n).fill(1), [n], dtype, label, 'weights-dense'));
  const templates = new Map<string, Nf4GpuWeight>();
  for (const l of arch.linears) {
    const key = `${l.out}x${l.in}`;
    if (!templates.has(key)) templates.set(key, randomNf4(kernels, l.out, l.in, templates.size + 1));
  }
  const embed = keep(randomTensor(kernels, [arch.vocabSize, arch.hidden], embedDtype, 0.02, 11, 'bench.embed', 'weights-dense'));
  const lmHead = arch.tiedEmbeddings ? embed : keep(randomTensor(kernels, [arch.vocabSize, arch.hidden], embedDtype, 0.02, 12, 'bench.lm_head', 'weights-dense'));
  const layers: LayerWeights[] = [];
  for (let i = 0; i < arch.layers; i++) {
    const linears = {} as Record<LinearName, LinearWeight>;
    for (const l of arch.linears) {
      const w = copyNf4(kernels, templates.get(`${l.out}x${l.in}`)!, `bench.${i}.${l.name}`);
      nf4.push(w);
      linears[l.name] = { kind: 'nf4', w };
    }
    layers.push({ inputNorm: ones(arch.hidden, 'bench.ln1'), postNorm: ones(arch.hidden, 'bench.ln2'), linears });
  }
  for (const t of templates.values()) destroyNf4(t);
  const inv = ropeInverseFrequenciesF32(arch);
  const invFreq = keep(uploadTensor(kernels.device, inv, [inv.length], 'f32', 'bench.inv_freq', 'weights-dense'));
  const finalNorm = ones(arch.hidden, 'bench.norm');
  return { model: { arch, dtype, embedDtype, embed, lmHead, finalNorm, invFreq, layers, owned }, nf4 };
}

function destroyRandomModel(m: { model: ModelWeights; nf4: Nf4GpuWeight[] }): void {
  for (const b of m.model.owned) b.destroy();
  for (const w of m.nf4) destroyNf4(w);
}

function randomIds(n: number, vocab: number, seed: number): Uint32Array {
  const r = randomF32(n, seed);
  return Uint32Array.from(r, (v) => Math.min(vocab - 1, Math.floor(((v + 1) / 2) * vocab)));
}

/** The fused NF4 matmul at a training shape: y = x · Wᵀ and dx = dy · W. */
export async function benchNf4Matmul(gpu: Gpu, kernels: Kernels, tokens: number, inp: number, out: number, repeats: number): Promise<Nf4MatmulResult[]> {
  const copies = rotationCopies(out * inp / 2);
  const ws = Array.from({ length: copies }, (_, i) => randomNf4(kernels, out, inp, 100 + i));
  const x = randomTensor(kernels, [tokens, inp], 'f32', 1, 7, 'bench.x');
  const y = createTensor(kernels.device, [tokens, out], 'f32', 'bench.y');
  const flops = 2 * tokens * inp * out;
  const results: Nf4MatmulResult[] = [];
  const fwd = await timePass(gpu, repeats, (pass, i) => encodeNf4Matmul(kernels, pass, x, ws[i % copies], y));
  results.push({ op: 'nf4-matmul', shape: [tokens, inp, out], direction: 'forward', ms: fwd * 1e3, tflops: flops / fwd / 1e12 });
  const bwd = await timePass(gpu, repeats, (pass, i) => encodeNf4MatmulBackward(kernels, pass, y, ws[i % copies], x));
  results.push({ op: 'nf4-matmul', shape: [tokens, inp, out], direction: 'backward-dx', ms: bwd * 1e3, tflops: flops / bwd / 1e12 });
  // Decode: one f16 row against the same weights (the GEMV kernel), as memory bandwidth.
  const x1 = randomTensor(kernels, [1, inp], 'f16', 1, 8, 'bench.x1');
  const y1 = createTensor(kernels.device, [1, out], 'f16', 'bench.y1');
  const gemv = await timePass(gpu, repeats, (pass, i) => encodeNf4Matmul(kernels, pass, x1, ws[i % copies], y1));
  const weightBytes = (out * inp) / 2 + (out * inp / 64) * 4;
  results.push({ op: 'nf4-matmul', shape: [1, inp, out], direction: 'gemv-f16', ms: gemv * 1e3, tflops: (2 * inp * out) / gemv / 1e12, gbps: weightBytes / gemv / 1e9 });
  x1.buffer.destroy();
  y1.buffer.destroy();
  for (const w of ws) destroyNf4(w);
  x.buffer.destroy();
  y.buffer.destroy();
  for (const r of results) console.log(`nf4 matmul ${r.direction} [${r.shape.join('x')}]: ${r.ms.toFixed(3)} ms, ${r.tflops.toPrecision(3)} TFLOP/s`);
  return results;
}

function linearParams(arch: ModelArch): number {
  return arch.linears.reduce((s, l) => s + l.in * l.out, 0) * arch.layers;
}

/**
 * `fn`'s result, and the CPU time spent between createCommandEncoder and queue.submit while it
 * ran (the recording of commands, which bounds decode when dispatches are many and small).
 */
async function recordingTime<R>(device: GPUDevice, fn: () => Promise<R>): Promise<{ value: R; ms: number; submits: number }> {
  const create = device.createCommandEncoder.bind(device);
  const submit = device.queue.submit.bind(device.queue);
  let started = 0;
  let ms = 0;
  let submits = 0;
  device.createCommandEncoder = (d?: GPUCommandEncoderDescriptor) => {
    started = performance.now();
    return create(d);
  };
  device.queue.submit = (buffers: Iterable<GPUCommandBuffer>) => {
    ms += performance.now() - started;
    submits++;
    submit(buffers);
  };
  try {
    return { value: await fn(), ms, submits };
  } finally {
    device.createCommandEncoder = create;
    device.queue.submit = submit;
  }
}

/**
 * GPU time of every dispatch `fn` records, summed per kernel (pipeline label): each dispatch runs in
 * a compute pass of its own with timestamps at its ends (Dawn's Node binding has no timestamps
 * inside a pass), the pipeline and bind groups set again in each. Pass boundaries add a little
 * time per dispatch; the split between kernels is what this is for. Only command buffers begun
 * while `when()` holds are timed (`buffers` counts them). `key` names a dispatch's entry (its
 * pipeline's label, or that and its grid where one kernel runs at several shapes).
 */
async function dispatchTimes<R>(
  device: GPUDevice,
  fn: () => Promise<R>,
  when: () => boolean = () => true,
  key: (label: string, grid: number[]) => string = (label) => label,
): Promise<{ value: R; byKernel: Map<string, { ms: number; count: number }>; buffers: number }> {
  const create = device.createCommandEncoder.bind(device);
  const PER_SET = 2048; // dispatches per query set (4096 timestamps)
  const reads: { buffer: GPUBuffer; labels: string[] }[] = [];
  let buffers = 0;
  device.createCommandEncoder = (d?: GPUCommandEncoderDescriptor) => {
    const enc = create(d);
    if (!when()) return enc;
    buffers++;
    const sets: { set: GPUQuerySet; labels: string[] }[] = [];
    const begin = enc.beginComputePass.bind(enc);
    enc.beginComputePass = (pd?: GPUComputePassDescriptor) => {
      let pipeline: GPUComputePipeline | undefined;
      const groups = new Map<number, GPUBindGroup | null>();
      const pass = {
        label: pd?.label ?? '',
        setPipeline: (p: GPUComputePipeline) => void (pipeline = p),
        setBindGroup: (i: number, g: GPUBindGroup | null) => void groups.set(i, g),
        dispatchWorkgroups: (x: number, y?: number, z?: number) => {
          let cur = sets[sets.length - 1];
          if (!cur || cur.labels.length === PER_SET) sets.push((cur = { set: device.createQuerySet({ type: 'timestamp', count: 2 * PER_SET }), labels: [] }));
          const i = cur.labels.length;
          cur.labels.push(key(pipeline?.label ?? '?', [x, y ?? 1, z ?? 1]));
          const real = begin({ timestampWrites: { querySet: cur.set, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 } });
          if (pipeline) real.setPipeline(pipeline);
          for (const [index, g] of groups) real.setBindGroup(index, g);
          real.dispatchWorkgroups(x, y, z);
          real.end();
        },
        end: () => {},
        pushDebugGroup: () => {},
        popDebugGroup: () => {},
        insertDebugMarker: () => {},
      };
      return pass as unknown as GPUComputePassEncoder;
    };
    const finish = enc.finish.bind(enc);
    enc.finish = (fd?: GPUCommandBufferDescriptor) => {
      for (const { set, labels } of sets) reads.push({ buffer: copyTimestamps(device, enc, set, labels.length), labels });
      return finish(fd);
    };
    return enc;
  };
  let value: R;
  try {
    value = await fn();
  } finally {
    device.createCommandEncoder = create;
  }
  const byKernel = new Map<string, { ms: number; count: number }>();
  for (const r of reads) {
    const spans = await readSpans(r.buffer, r.labels.length);
    r.labels.forEach((label, i) => {
      const e = byKernel.get(label) ?? { ms: 0, count: 0 };
      e.ms += spans[i];
      e.count++;
      byKernel.set(label, e);
    });
  }
  return { value, byKernel, buffers };
}

/** Records the copy of `spans` (begin, end) timestamp pairs of `set` into a buffer readSpans can map. */
function copyTimestamps(device: GPUDevice, enc: GPUCommandEncoder, set: GPUQuerySet, spans: number): GPUBuffer {
  const bytes = 16 * spans;
  const resolve = device.createBuffer({ size: bytes, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
  const read = device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  enc.resolveQuerySet(set, 0, 2 * spans, resolve, 0);
  enc.copyBufferToBuffer(resolve, 0, read, 0, bytes);
  return read;
}

/** The (begin, end) pairs copyTimestamps left in `buffer` (GPU clock, ns), which it then destroys. */
async function readStamps(buffer: GPUBuffer, spans: number): Promise<[bigint, bigint][]> {
  await buffer.mapAsync(GPUMapMode.READ);
  const t = new BigUint64Array(buffer.getMappedRange().slice(0));
  buffer.destroy();
  return Array.from({ length: spans }, (_, i) => [t[2 * i], t[2 * i + 1]]);
}

/** The milliseconds of each (begin, end) pair copyTimestamps left in `buffer`, which it then destroys. */
async function readSpans(buffer: GPUBuffer, spans: number): Promise<number[]> {
  return (await readStamps(buffer, spans)).map(([b, e]) => Number(e - b) / 1e6);
}

/** The kernels that took the most GPU time, as one line each. */
function describeKernelTimes(byKernel: Map<string, { ms: number; count: number }>, top = 20): string[] {
  const total = [...byKernel.values()].reduce((a, e) => a + e.ms, 0);
  return [...byKernel.entries()]
    .sort((a, b) => b[1].ms - a[1].ms)
    .slice(0, top)
    .map(([label, e]) => `${e.ms.toFixed(e.ms < 10 ? 3 : 1).padStart(8)} ms ${((100 * e.ms) / total).toFixed(1).padStart(5)}%  x${e.count}  ${label}`);
}

async function passTimes<R>(
  device: GPUDevice,
  fn: () => Promise<R>,
): Promise<{ value: R; perBufferMs: number; perPassMs: number[]; buffers: number[][]; idle: { ms: number; gaps: { after: string; ms: number }[] } }> {
  const create = device.createCommandEncoder.bind(device);
  const reads: { buffer: GPUBuffer; passes: number }[] = [];
  const MAX_PASSES = 2048; // a query set holds 4096 timestamps
  device.createCommandEncoder = (d?: GPUCommandEncoderDescriptor) => {
    const enc = create(d);
    const querySet = device.createQuerySet({ type: 'timestamp', count: 2 * MAX_PASSES });
    let passes = 0;
    const begin = enc.beginComputePass.bind(enc);
    enc.beginComputePass = (pd?: GPUComputePassDescriptor) => {
      if (passes >= MAX_PASSES || pd?.timestampWrites) return begin(pd);
      const i = passes++;
      return begin({ ...pd, timestampWrites: { querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 } });
    };
    const finish = enc.finish.bind(enc);
    enc.finish = (fd?: GPUCommandBufferDescriptor) => {
      if (passes > 0) reads.push({ buffer: copyTimestamps(device, enc, querySet, passes), passes });
      return finish(fd);
    };
    return enc;
  };
  let value: R;
  try {
    value = await fn();
  } finally {
    device.createCommandEncoder = create;
  }
  const totals: number[] = [];
  const byPass: number[][] = [];
  const buffers: number[][] = [];
  const timeline: { at: string; begin: bigint; end: bigint }[] = [];
  for (const [b, r] of reads.entries()) {
    const stamps = await readStamps(r.buffer, r.passes);
    const own = stamps.map(([s, e]) => Number(e - s) / 1e6);
    stamps.forEach(([begin, end], i) => timeline.push({ at: `${b}.${i}`, begin, end }));
    buffers.push(own);
    own.forEach((ms, i) => (byPass[i] ??= []).push(ms));
    totals.push(own.reduce((a, ms) => a + ms, 0));
  }
  // Where the GPU waited between passes (for the CPU: recording, a read-back, a submit).
  timeline.sort((x, y) => (x.begin < y.begin ? -1 : x.begin > y.begin ? 1 : 0));
  const gaps = timeline.slice(1).map((x, i) => ({ after: timeline[i].at, ms: Math.max(0, Number(x.begin - timeline[i].end) / 1e6) }));
  const idle = { ms: gaps.reduce((a, g) => a + g.ms, 0), gaps: gaps.sort((x, y) => y.ms - x.ms).slice(0, 5) };
  return { value, perBufferMs: median(totals), perPassMs: byPass.map(median), buffers, idle };
}

/**
 * CPU cost of recording one decode step (forward of one token with the KV cache, the lm_head row),
 * without submitting it, without and with an adapter: what bounds decode when the GPU is fast. For
 * profiling (node --cpu-prof).
 */
export async function benchDecodeRecording(kernels: Kernels, name: string, o: EngineBenchOptions, steps = 200): Promise<{ greedyMs: number; chatMs: number }> {
  const config = { ...LOAD_CONFIGS[name], ...(o.layers ? { num_hidden_layers: o.layers } : {}), ...(o.vocab ? { vocab_size: o.vocab } : {}) };
  const arch = parseModelConfig(config);
  const inf = randomModel(kernels, arch, kernels.gpu.info.f16 ? 'f16' : 'f32');
  const gen = new Generator(kernels, inf.model, { maxContext: 64, prefillChunk: 16 });
  const record = (gen as unknown as { encodeStep(enc: GPUCommandEncoder, ids: Uint32Array | null, n: number, lora: LoraSet | null, logits: boolean): void }).encodeStep.bind(gen);
  // Greedy (no adapter), then chat's forward (an adapter r 16 on the seven targets; the sampler apart).
  const lora = createLora(kernels.device, arch, { r: 16, alpha: 16, rslora: true, targets: LINEAR_NAMES }, 0);
  const time = (set: LoraSet | null): number => {
    const times: number[] = [];
    for (let i = 0; i < steps; i++) {
      gen.reset();
      const t0 = performance.now();
      const enc = kernels.device.createCommandEncoder();
      record(enc, null, 1, set, true);
      enc.finish();
      times.push(performance.now() - t0);
    }
    return median(times);
  };
  const greedyMs = time(null);
  const chatMs = time(lora);
  destroyLora(lora);
  gen.destroy();
  destroyRandomModel(inf);
  console.log(`${name} (${arch.layers} layers): recording a decode step takes ${greedyMs.toFixed(2)} ms of CPU, ${chatMs.toFixed(2)} ms with an adapter (medians of ${steps})`);
  return { greedyMs, chatMs };
}

/** What the training figures run on: a random NF4 model (f32 activations, E in f16 where the device
 * has it), an adapter r 16 on the seven targets, 8-bit AdamW, and one packed row of T tokens. */
function trainingSetup(kernels: Kernels, arch: ModelArch, T: number): { run: ReturnType<typeof createForwardRun>; trainer: ReturnType<typeof createTrainer>; batch: PackedBatch; free: () => void } {
  const embedDtype = embedDtypeFor(kernels);
  const tr = randomModel(kernels, arch, 'f32', embedDtype);
  const lora = createLora(kernels.device, arch, { r: 16, alpha: 16, rslora: true, targets: LINEAR_NAMES }, 0);
  const run = createForwardRun({ kernels, model: tr.model, lora }, { batch: 1, seqLen: T, embedDtype });
  const trainer = createTrainer(run, { schedule: () => 1e-4, optimizerBits: 8, maxGradNorm: 1 });
  const batch: PackedBatch = {
    batch: 1,
    seqLen: T,
    inputIds: randomIds(T, arch.vocabSize, 9),
    segmentIds: new Uint32Array(T).fill(1),
    lossMask: new Uint8Array(T).fill(1),
    positionIds: Uint32Array.from({ length: T }, (_, i) => i),
  };
  const free = () => {
    destroyTrainer(trainer);
    destroyForwardRun(run);
    destroyLora(lora);
    destroyRandomModel(tr);
  };
  return { run, trainer, batch, free };
}

/**
 * CPU cost of recording a training step's forward (with the loss) and its backward at seq T, without
 * submitting them: the forward's recording is time the GPU waits between steps (the update before
 * it is a few ms of GPU; the backward is recorded while the forward runs).
 */
export async function benchTrainRecording(kernels: Kernels, name: string, o: EngineBenchOptions, steps = 5): Promise<{ forwardMs: number; backwardMs: number }> {
  const config = { ...LOAD_CONFIGS[name], ...(o.layers ? { num_hidden_layers: o.layers } : {}), ...(o.vocab ? { vocab_size: o.vocab } : {}) };
  const arch = parseModelConfig(config);
  const T = o.seqLen;
  const { run, trainer, batch, free } = trainingSetup(kernels, arch, T);
  const { tensors: t, trainedTokens } = writeBatch(run, batch);
  const forward: number[] = [];
  const backward: number[] = [];
  for (let i = 0; i <= steps; i++) {
    const t0 = performance.now();
    encodeForward(kernels.device.createCommandEncoder(), run, t, { loss: true });
    const t1 = performance.now();
    encodeBackward(kernels.device.createCommandEncoder(), run, t, trainer.scratch, trainer.grads, trainedTokens);
    const t2 = performance.now();
    if (i > 0) forward.push(t1 - t0), backward.push(t2 - t1); // the first records the bind groups' first use
  }
  free();
  const forwardMs = median(forward);
  const backwardMs = median(backward);
  console.log(`${name} (${arch.layers} layers, seq ${T}): recording a training step's forward takes ${forwardMs.toFixed(2)} ms of CPU, its backward ${backwardMs.toFixed(2)} ms (medians of ${steps})`);
  return { forwardMs, backwardMs };
}

/** Prefill, decode and training of one model shape. */
export async function benchModel(kernels: Kernels, name: string, o: EngineBenchOptions): Promise<ModelBenchResult> {
  const device = kernels.device;
  const c = census(device);
  const config = { ...LOAD_CONFIGS[name], ...(o.layers ? { num_hidden_layers: o.layers } : {}), ...(o.vocab ? { vocab_size: o.vocab } : {}) };
  const arch = parseModelConfig(config);
  const T = o.seqLen;

  // Inference: the chat path's dtype (f16 where the device has it).
  const inferenceDtype: DType = kernels.gpu.info.f16 ? 'f16' : 'f32';
  c.resetPeak();
  const inf = randomModel(kernels, arch, inferenceDtype);
  const gen = new Generator(kernels, inf.model, { maxContext: T + o.decodeTokens + 16, prefillChunk: T });
  const prompt = Array.from(randomIds(T, arch.vocabSize, 5));
  const prefill: number[] = [];
  for (let i = 0; i < 4; i++) {
    gen.reset();
    await device.queue.onSubmittedWorkDone();
    const t0 = performance.now();
    gen.feed(prompt, null);
    await device.queue.onSubmittedWorkDone();
    if (i > 0) prefill.push((performance.now() - t0) / 1000);
  }
  const decode: number[] = [];
  let decodeRecordMs = Infinity;
  for (let i = 0; i < 2; i++) {
    const rec = await recordingTime(device, () => gen.generate(prompt.slice(0, 16), null, { maxNewTokens: o.decodeTokens, temperature: 0 }));
    decode.push(rec.value.decodeTokensPerSecond);
    decodeRecordMs = Math.min(decodeRecordMs, rec.ms / rec.submits);
  }
  // GPU time of a decode step (timestamps around each pass; only with timestamp-query).
  let decodeGpuMsPerToken: number | undefined;
  if (kernels.gpu.info.timestamps) {
    const pt = await passTimes(device, () => gen.generate(prompt.slice(0, 16), null, { maxNewTokens: Math.min(16, o.decodeTokens), temperature: 0 }));
    decodeGpuMsPerToken = pt.perBufferMs;
    const slow = pt.perPassMs.map((ms, i) => [i, ms]).sort((a, b) => b[1] - a[1]).slice(0, 4);
    console.log(`${name}: decode GPU ${pt.perBufferMs.toFixed(2)} ms per token over ${pt.perPassMs.length} passes; slowest passes ${slow.map(([i, ms]) => `#${i} ${ms.toFixed(3)} ms`).join(', ')}`);
  }
  // Decode at the end of a long context: the prompt is the prefill's T tokens.
  const longPrompt = prompt.slice(0, T - o.decodeTokens - 1);
  const longDecode = (await gen.generate(longPrompt, null, { maxNewTokens: o.decodeTokens, temperature: 0 })).decodeTokensPerSecond;
  // The chat tab's defaults (CHAT_SAMPLING) with an adapter (r 16, seven targets)
  // on: every step samples (penalty, temperature, top-p) and runs the LoRA products.
  const chatLora = createLora(device, arch, { r: 16, alpha: 16, rslora: true, targets: LINEAR_NAMES }, 0);
  const chat = CHAT_SAMPLING;
  const chatDecode: number[] = [];
  let chatRecordMs = Infinity;
  const CHAT_RUNS = 5;
  for (let i = 0; i < CHAT_RUNS; i++) {
    const rec = await recordingTime(device, () => gen.generate(prompt.slice(0, 16), chatLora, { maxNewTokens: o.decodeTokens, seed: i, ...chat }));
    chatDecode.push(rec.value.decodeTokensPerSecond);
    chatRecordMs = Math.min(chatRecordMs, rec.ms / rec.submits);
  }
  const chatDecodeTokensPerSecond = Math.max(...chatDecode);
  let chatGpuMsPerToken: number | undefined;
  if (kernels.gpu.info.timestamps) {
    const pt = await passTimes(device, () => gen.generate(prompt.slice(0, 16), chatLora, { maxNewTokens: Math.min(16, o.decodeTokens), seed: 9, ...chat }));
    chatGpuMsPerToken = pt.perBufferMs;
  }
  console.log(
    `${name}: chat decode (adapter on, temperature ${chat.temperature}, top-p ${chat.topP}, repetition penalty ${chat.repetitionPenalty}) ${chatDecodeTokensPerSecond.toFixed(1)} tokens/s ` +
      `(best of ${CHAT_RUNS}: ${chatDecode.map((v) => v.toFixed(1)).join(', ')}), ${chatRecordMs.toFixed(2)} ms of CPU recording per token` +
      (chatGpuMsPerToken === undefined ? '' : `, ${chatGpuMsPerToken.toFixed(2)} ms of GPU per token`),
  );
  // GPU time per kernel of a decode step: greedy after a short prompt and after a long one, and chat's.
  let decodeKernelMs: ModelBenchResult['decodeKernelMs'];
  if (kernels.gpu.info.timestamps) {
    const tokens = Math.min(16, o.decodeTokens);
    const perToken = async (what: string, p: number[], lora: LoraSet | null, opts: Partial<SampleOptions>): Promise<Record<string, number>> => {
      // Steps are recorded one ahead of the token read back: from the first token on, every
      // command buffer is a decode step's (the prompt's are all begun before it).
      let decoding = false;
      const dt = await dispatchTimes(
        device,
        () => gen.generate(p, lora, { maxNewTokens: tokens, temperature: 0, ...opts, onToken: () => void (decoding = true) }),
        () => decoding,
        // The GEMVs per shape (their grid): which projections the time goes to.
        (label, grid) => (label.includes('gemv') ? `${label} [${grid.slice(0, 2).join('x')}]` : label),
      );
      const steps = dt.buffers;
      const byToken = new Map([...dt.byKernel].map(([k, e]) => [k, { ms: e.ms / steps, count: e.count / steps }]));
      const total = [...byToken.values()].reduce((a, e) => a + e.ms, 0);
      console.log(`${name}: a ${what} decode step after ${p.length} tokens: ${total.toFixed(2)} ms of GPU in its dispatches (each timed alone, ${steps} steps); by kernel, per token:\n${describeKernelTimes(byToken).join('\n')}`);
      return Object.fromEntries([...byToken].map(([k, e]) => [k, e.ms]));
    };
    decodeKernelMs = {
      short: await perToken('greedy', prompt.slice(0, 16), null, {}),
      long: await perToken('greedy', longPrompt, null, {}),
      chat: await perToken('chat', prompt.slice(0, 16), chatLora, chat),
    };
  }
  destroyLora(chatLora);
  const inferencePeakBytes = c.peak;
  gen.destroy();
  destroyRandomModel(inf);
  console.log(
    `${name}: prefill ${T} tokens ${(T / median(prefill)).toFixed(0)} tokens/s, decode ${Math.max(...decode).toFixed(1)} tokens/s (${inferenceDtype}; ` +
      `${decodeRecordMs.toFixed(2)} ms of CPU recording per token), at ${T} tokens of context ${longDecode.toFixed(1)} tokens/s, peak ${(inferencePeakBytes / 2 ** 30).toFixed(2)} GiB`,
  );

  // Training: f32 activations (the backward's mode), E in f16 where the device has it, batch 1 at seq T.
  c.resetPeak();
  const memory = gpuMemory(device);
  memory.resetPeak();
  const trainEmbedDtype = embedDtypeFor(kernels);
  const { trainer, batch, free } = trainingSetup(kernels, arch, T);
  const times: number[] = [];
  const losses: number[] = [];
  if (o.trainSteps > 0) {
    losses.push((await submitStep(trainer, [batch])).loss); // warm-up: the pipelines compile
    // Each step submitted before the last one's outcome is read (submitStep), as the studio's loop
    // runs them: a step's time is from one outcome to the next (the first: from its submission).
    let t = performance.now();
    let pending = submitStep(trainer, [batch]);
    for (let s = 1; s <= o.trainSteps; s++) {
      const next = s < o.trainSteps ? submitStep(trainer, [batch]) : null;
      losses.push((await pending).loss);
      const now = performance.now();
      times.push((now - t) / 1000);
      t = now;
      if (next) pending = next;
    }
  }
  // GPU time of one step's passes against its wall time: what the CPU and the gaps cost.
  if (o.trainSteps > 0 && kernels.gpu.info.timestamps) {
    const t0 = performance.now();
    const pt = await passTimes(device, () => submitStep(trainer, [batch]));
    const wall = performance.now() - t0;
    // Two steps, the second submitted before the first is read: the GPU's waits inside a step and between one step's update and the next forward.
    const two = await passTimes(device, async () => {
      const first = submitStep(trainer, [batch]);
      const second = submitStep(trainer, [batch]);
      await first;
      return second;
    });
    await device.queue.onSubmittedWorkDone();
    const all = pt.buffers.flatMap((passes, b) => passes.map((ms, i) => ({ at: `${b}.${i}`, ms })));
    const total = all.reduce((a, x) => a + x.ms, 0);
    const slow = [...all].sort((a, b) => b.ms - a.ms).slice(0, 6);
    console.log(
      `${name}: a training step is ${total.toFixed(1)} ms of GPU passes (${all.length} passes in ${pt.buffers.length} command buffers) in ${wall.toFixed(1)} ms of wall time; ` +
        `slowest passes (buffer.pass) ${slow.map((x) => `${x.at} ${x.ms.toFixed(1)} ms`).join(', ')}`,
    );
    console.log(
      `${name}: over two steps back to back the GPU waited ${two.idle.ms.toFixed(1)} ms between passes; longest waits after (buffer.pass) ` +
        two.idle.gaps.map((g) => `${g.after} ${g.ms.toFixed(1)} ms`).join(', '),
    );
  }
  // GPU time per kernel of one step (a timestamp around every dispatch).
  let trainKernelMs: Record<string, number> | undefined;
  if (o.trainSteps > 0 && kernels.gpu.info.timestamps) {
    const dt = await dispatchTimes(device, () => submitStep(trainer, [batch]));
    {
      const total = [...dt.byKernel.values()].reduce((a, e) => a + e.ms, 0);
      trainKernelMs = Object.fromEntries([...dt.byKernel.entries()].map(([k, e]) => [k, e.ms]));
      console.log(`${name}: a training step's dispatches take ${total.toFixed(1)} ms of GPU; by kernel:\n${describeKernelTimes(dt.byKernel).join('\n')}`);
    }
  }
  const trainPeakBytes = c.peak;
  const trainTrackedPeakBytes = memory.peak;
  free();
  const step = times.length > 0 ? median(times) : NaN;
  const n = linearParams(arch);
  // Forward FLOPs per token: 2 per weight of the linears, LoRA (r = 16) and lm_head; attention's
  // QKᵀ and PV over T / 2 keys on average (causal). The backward to the inputs costs one forward
  // for the linears and two for attention; the recompute of checkpointing is not counted.
  const loraParams = arch.layers * arch.linears.reduce((s, l) => s + 16 * (l.in + l.out), 0);
  const linearFwd = 2 * (n + loraParams + arch.vocabSize * arch.hidden);
  const attnFwd = arch.layers * 2 * T * arch.heads * arch.headDim;
  const perToken = 2 * linearFwd + 3 * attnFwd;
  const result: ModelBenchResult = {
    op: 'model',
    shape: name,
    layers: arch.layers,
    vocab: arch.vocabSize,
    prefillTokens: T,
    prefillTokensPerSecond: T / median(prefill),
    decodeTokensPerSecond: Math.max(...decode),
    decodeRecordMsPerToken: decodeRecordMs,
    decodeGpuMsPerToken,
    longContextDecodeTokensPerSecond: longDecode,
    decodeKernelMs,
    chatDecodeTokensPerSecond,
    chatDecodeRuns: chatDecode,
    chatDecodeRecordMsPerToken: chatRecordMs,
    chatGpuMsPerToken,
    inferenceDtype,
    inferencePeakBytes,
    trainSeqLen: T,
    trainStepSeconds: step,
    trainTokensPerSecond: T / step,
    trainModelTflops: (perToken * T) / step / 1e12,
    trainPeakBytes,
    trainTrackedPeakBytes,
    trainEmbedDtype,
    trainLosses: losses,
    trainKernelMs,
  };
  if (o.trainSteps > 0) console.log(`${name}: train ${result.trainTokensPerSecond.toFixed(0)} tokens/s (${step.toFixed(3)} s/step, ${result.trainModelTflops.toPrecision(3)} model TFLOP/s), peak ${(trainPeakBytes / 2 ** 30).toFixed(2)} GiB (accountant ${(trainTrackedPeakBytes / 2 ** 30).toFixed(2)} GiB, E ${trainEmbedDtype}), losses ${losses.map((l) => l.toFixed(3)).join(' ')}`);
  return result;
}

export function engineDefaults(quick: boolean): EngineBenchOptions {
  return quick
    ? { shapes: ['1b'], seqLen: 128, trainSteps: 2, decodeTokens: 8, layers: 2, vocab: 4096 }
    : { shapes: ['1b', '8b'], seqLen: 2048, trainSteps: 3, decodeTokens: 64 };
}
