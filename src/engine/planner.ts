// Memory planner: how many bytes a QLoRA run of a model needs on the GPU, item by item, and
// whether it fits. WebGPU reports no VRAM size, so the total is checked only against a device
// memory a person (or a preset) gives; the per-buffer limits are always checked, since those the
// adapter does report. Every number is a closed formula over the architecture and the settings, so
// the tests can restate it by hand. Pure functions: no GPU, no DOM.
import { formatBytes } from '../util/format.ts';
import { isSkippedModule, LINEAR_NAMES, linearModulePath, type LinearName, type LinearSpec, type ModelArch } from './arch.ts';
import type { GpuLimits } from './gpu.ts';

export type OptimizerKind = 'adamw_32bit' | 'adamw_8bit';
export type StorageDtype = 'f32' | 'f16';

export interface PlanSettings {
  /** Sequences per micro-batch (gradient accumulation does not change memory). */
  batchSize: number;
  /** Tokens per sequence (max_seq_length). */
  seqLen: number;
  /** LoRA rank r. */
  loraR: number;
  /** Linear layers that get LoRA adapters. */
  targets: readonly LinearName[];
  gradientCheckpointing: boolean;
  optimizer: OptimizerKind;
  /** Storage of activations (norm outputs, q/k/v, MLP intermediates). The residual stream is f32. */
  activationDtype: StorageDtype;
  /** Tokens per chunk of the fused lm_head + cross-entropy: the workspace is [chunk, vocab] f32. */
  lmHeadChunk: number;
  /** Storage of the per-layer checkpoints (default: activationDtype). 'f32' makes the recomputed
   * forward bit-identical to the first one; 'f16' rounds the f32 residual and halves the memory. */
  checkpointDtype?: StorageDtype;
  /** Chat KV cache length in tokens (default: seqLen). */
  chatContext?: number;
  /** Double quantization for a model we quantize ourselves (default true, as QLoRA and Unsloth);
   * a bnb-4bit checkpoint keeps what its config says. */
  doubleQuant?: boolean;
  /** Storage of embed_tokens and lm_head, independent of activationDtype (the lookup and the
   * chunked lm_head read E in its own type; training keeps f32 activations against an f16 E).
   * Default: embeddingDtypeFor(gpu): f16 unless the GPU is known to lack shader-f16. */
  embeddingDtype?: StorageDtype;
  /** Matmuls dequantize NF4 tiles on the fly (default true). false adds a scratch buffer holding the
   * largest frozen linear dequantized in the activation dtype. */
  fusedDequant?: boolean;
}

/** What the planner knows of the GPU. Limits come from GpuInfo.limits; memory from the person. */
export interface PlannerGpu {
  limits?: Partial<Pick<GpuLimits, 'maxBufferSize' | 'maxStorageBufferBindingSize'>>;
  /** Whether the GPU has shader-f16 (GpuInfo.f16); unknown: assumed. Picks the default embeddingDtype. */
  f16?: boolean;
  /** GPU memory available to the browser, in bytes (WebGPU cannot tell; a person or preset can). */
  deviceMemoryBytes?: number;
}

/** WebGPU's default limits, used when no adapter limits are given. */
export const SPEC_DEFAULT_LIMITS = { maxBufferSize: 268_435_456, maxStorageBufferBindingSize: 134_217_728 } as const;

/** NF4 block size (Params4bit default) and double-quant block of absmax values. */
export const NF4_BLOCK = 64;
export const NF4_NESTED_BLOCK = 256;
/** bitsandbytes' 8-bit optimizer state block. */
export const OPTIM8_BLOCK = 256;

export type PlanDtype = 'f32' | 'f16' | 'u8' | 'i32';

/** One tensor of the activation plan: `count` copies (e.g. one per layer) of [shape] in dtype. */
export interface TensorPlan {
  name: string;
  shape: number[];
  dtype: PlanDtype;
  /** Bytes of one copy. */
  bytes: number;
  count: number;
}

export interface BufferCheck {
  name: string;
  bytes: number;
  /** GPUBuffers needed (bytes / maxBufferSize, rounded up). */
  buffers: number;
  /** Storage-binding ranges needed (bytes / maxStorageBufferBindingSize, rounded up). */
  bindings: number;
  /** Set when the buffer must be split. */
  message?: string;
}

export type MemoryItemKey =
  | 'weights'
  | 'lora'
  | 'loraGrads'
  | 'optimizer'
  | 'activations'
  | 'lmHead'
  | 'temporaries'
  | 'kvCache'
  | 'chat';

export interface MemoryItem {
  key: MemoryItemKey;
  label: string;
  bytes: number;
  detail: string;
}

export interface WeightsPlan {
  /** Packed NF4 codes, 0.5 byte per weight. */
  nf4: number;
  /** absmax per 64-block: f32, or with double quant u8 + f32 per 256 absmax + f32 offset per tensor. */
  absmax: number;
  /** Linears kept unquantized (bnb skip modules), f16. */
  unquantized: number;
  biases: number;
  norms: number;
  embedding: number;
  lmHead: number;
  /** NF4 code table (16 f32) and, with double quant, the 8-bit dynamic map (256 f32): shared. */
  codeTables: number;
  total: number;
  doubleQuant: boolean;
  quantizedLinears: number;
  unquantizedLinears: number;
}

export interface MemoryPlan {
  settings: Required<PlanSettings>;
  /** batchSize * seqLen. */
  tokens: number;
  weights: WeightsPlan;
  lora: { params: number; bytes: number };
  loraGrads: number;
  optimizer: number;
  activations: {
    /** What is kept from the forward for the backward (per layer, or one layer's recompute). */
    tensors: TensorPlan[];
    /** Per-layer checkpoints (gradient checkpointing) or 0. */
    checkpoints: number;
    /** Everything each layer keeps, times the layers (no checkpointing), or one layer (with it). */
    layers: number;
    /** The final norm's input/output and statistics. */
    head: number;
    total: number;
  };
  lmHead: { chunkTokens: number; bytes: number };
  temporaries: { backward: number; inputs: number; rope: number; dequantScratch: number; total: number };
  kvCache: { context: number; bytes: number };
  /** Chat-only extras next to the KV cache (one row of logits). */
  chat: number;
  trainingBytes: number;
  /** Weights + LoRA + KV cache + chat extras: chatting without a run. */
  chatBytes: number;
  /** Training plus chat on top (a paused run keeps its buffers while a person chats). */
  totalBytes: number;
  items: MemoryItem[];
  buffers: BufferCheck[];
  largestBuffer: BufferCheck;
  limits: { maxBufferSize: number; maxStorageBufferBindingSize: number; source: 'device' | 'spec-default' };
  deviceMemoryBytes: number | null;
  /** null when the device memory is unknown. */
  fits: boolean | null;
  warnings: string[];
  /** Human-readable breakdown, one line per item, then the total and the verdict. */
  lines: string[];
  assumptions: string[];
}

const BYTES: Record<PlanDtype, number> = { f32: 4, f16: 2, u8: 1, i32: 4 };

function tensor(name: string, shape: number[], dtype: PlanDtype, count = 1): TensorPlan {
  return { name, shape, dtype, bytes: shape.reduce((a, b) => a * b, 1) * BYTES[dtype], count };
}

const sumTensors = (ts: TensorPlan[]) => ts.reduce((s, t) => s + t.bytes * t.count, 0);

/** Bytes of one frozen linear stored as NF4. */
export function nf4Bytes(elements: number, doubleQuant: boolean, blocksize = NF4_BLOCK): { nf4: number; absmax: number } {
  const blocks = Math.ceil(elements / blocksize);
  const nf4 = Math.ceil(elements / 2);
  const absmax = doubleQuant ? blocks + Math.ceil(blocks / NF4_NESTED_BLOCK) * 4 + 4 : blocks * 4;
  return { nf4, absmax };
}

/** LoRA parameters: r * (in + out) per target linear per layer. */
export function loraParamCount(arch: ModelArch, r: number, targets: readonly LinearName[]): number {
  return arch.linears.filter((l) => targets.includes(l.name)).reduce((s, l) => s + r * (l.in + l.out), 0) * arch.layers;
}

/**
 * The storage of embed_tokens / lm_head on a GPU, for training as for chat: f16 where it has
 * shader-f16 (or where that is not known), else f32; whatever the activation dtype. The same rule
 * as the loader's default embeddingDtype and model.ts embedDtypeFor.
 */
export function embeddingDtypeFor(gpu?: { f16?: boolean } | null): StorageDtype {
  return gpu?.f16 === false ? 'f32' : 'f16';
}

/** The largest lm_head chunk (tokens) whose [chunk, vocab] f32 logits fit one storage binding. */
export function maxLmHeadChunk(arch: ModelArch, maxStorageBufferBindingSize: number): number {
  return Math.floor(maxStorageBufferBindingSize / (arch.vocabSize * 4));
}

export function planMemory(arch: ModelArch, settings: PlanSettings, gpu: PlannerGpu = {}): MemoryPlan {
  const s = resolveSettings(arch, settings, gpu);
  const a = s.activationDtype;
  const N = s.batchSize * s.seqLen;
  const H = arch.hidden;
  const F = arch.intermediate;
  const V = arch.vocabSize;
  const Hq = arch.heads * arch.headDim;
  const Hkv = arch.kvHeads * arch.headDim;
  const r = s.loraR;
  const targets = arch.linears.filter((l) => s.targets.includes(l.name));
  const assumptions: string[] = [];

  // ---- frozen base weights
  const weights = planWeights(arch, s);
  assumptions.push(
    `frozen linears as NF4: 0.5 byte per weight + an f32 absmax per ${NF4_BLOCK} weights ` +
      (weights.doubleQuant ? '(double-quantized in the file, decoded to f32 on the GPU)' : ''),
    `embed_tokens${arch.tiedEmbeddings ? ' (tied to lm_head)' : ' and lm_head'} in ${s.embeddingDtype} (WGSL has no bf16), norms and biases in f32`,
  );

  // ---- LoRA, its gradients, the optimizer
  const loraParams = loraParamCount(arch, r, s.targets);
  const lora = { params: loraParams, bytes: loraParams * 4 };
  const loraGrads = loraParams * 4;
  let optimizer: number;
  if (s.optimizer === 'adamw_32bit') {
    optimizer = loraParams * 8;
  } else {
    // Two 8-bit states per value + one f32 absmax per 256-block per state, per tensor (A and B),
    // + the two shared 256-entry f32 quantization maps.
    optimizer = 2 * 256 * 4;
    for (const l of targets) {
      for (const n of [r * l.in, l.out * r]) optimizer += (2 * n + 2 * Math.ceil(n / OPTIM8_BLOCK) * 4) * arch.layers;
    }
    assumptions.push(
      `AdamW 8-bit: every LoRA tensor blockwise 8-bit (bitsandbytes keeps tensors under 4096 values in 32-bit), dequantized in registers during the step`,
    );
  }
  assumptions.push('LoRA A/B, their gradients and AdamW master values in f32; one gradient buffer whatever the accumulation');

  // ---- activations kept for the backward
  const layerSet = savedPerLayer(arch, s, N);
  const layerInput = tensor('layer input (residual)', [N, H], 'f32');
  let tensors: TensorPlan[];
  let checkpoints = 0;
  let layersBytes: number;
  if (s.gradientCheckpointing) {
    const ck = tensor('checkpoint: layer input', [N, H], s.checkpointDtype, arch.layers);
    // Each layer's logsumexp too (the recompute's attention takes one pass over the keys with it).
    const lse = layerSet.find((t) => t.name === 'attention logsumexp')!;
    checkpoints = ck.bytes * ck.count + lse.bytes * (arch.layers - 1);
    layersBytes = sumTensors(layerSet);
    tensors = [ck, { ...lse, name: 'checkpoint: attention logsumexp', count: arch.layers - 1 }, ...layerSet];
    assumptions.push(
      `gradient checkpointing: each layer's input kept in ${s.checkpointDtype} and its attention logsumexp in f32, one layer's forward recomputed at a time`,
    );
  } else {
    tensors = [layerInput, ...layerSet].map((t) => ({ ...t, count: t.count * arch.layers }));
    layersBytes = sumTensors(tensors);
  }
  const headTensors = [
    tensor('final residual', [N, H], 'f32'),
    tensor('final norm rstd', [N], 'f32'),
    tensor('final norm output', [N, H], a),
  ];
  tensors.push(...headTensors);
  const head = sumTensors(headTensors);
  const activationsTotal = checkpoints + layersBytes + head;
  assumptions.push('attention flash-style: q, k, v, output and a logsumexp per head and token are kept, never [T, T] scores');

  // ---- chunked lm_head + cross-entropy
  const chunkTokens = Math.min(s.lmHeadChunk, N);
  const lmHeadBytes = chunkTokens * V * 4 + 2 * N * 4; // logits chunk (reused for its gradient) + per-token max/logsumexp
  assumptions.push(`lm_head + cross-entropy in chunks of ${chunkTokens} tokens: [chunk, vocab] f32 logits, overwritten by their gradient`);

  // ---- temporaries
  const dx = 2 * N * H * 4; // gradient of the residual stream + gradient at the norm output, f32
  const mlpBack = 2 * N * F * BYTES[a]; // d(gate), d(up) (d(act) written in place)
  const attnBack = (2 * N * Hq + 2 * N * Hkv) * BYTES[a] + N * arch.heads * 4; // d(out), dq, dk, dv + rowsum(dO*O)
  const loraBack = targets.length ? N * r * 4 : 0; // gradient through x·Aᵀ, one target at a time
  const backward = dx + Math.max(mlpBack, attnBack) + loraBack;
  const inputs = 3 * N * 4; // token ids, labels, positions (segment-aware) as i32
  const rope = s.seqLen * arch.headDim * 4; // cos and sin tables [seqLen, headDim/2] f32
  const quantized = arch.linears.filter((l) => !isUnquantized(arch, l));
  const dequantScratch = s.fusedDequant ? 0 : Math.max(0, ...quantized.map((l) => l.out * l.in)) * BYTES[a];
  const temporaries = { backward, inputs, rope, dequantScratch, total: backward + inputs + rope + dequantScratch };
  assumptions.push('backward buffers are shared by all layers; the MLP and attention branches reuse the same space');
  if (!s.fusedDequant) assumptions.push('the largest frozen linear is dequantized whole into a scratch buffer before each matmul');

  // ---- chat
  const kvCache = { context: s.chatContext, bytes: arch.layers * 2 * Hkv * s.chatContext * BYTES[a] };
  const chat = V * 4;
  assumptions.push(`chat: KV cache of ${s.chatContext} tokens in ${a}, batch 1, prompts prefilled through the training arena`);

  const trainingBytes = weights.total + lora.bytes + loraGrads + optimizer + activationsTotal + lmHeadBytes + temporaries.total;
  const chatBytes = weights.total + lora.bytes + kvCache.bytes + chat;
  const totalBytes = trainingBytes + kvCache.bytes + chat;

  const items: MemoryItem[] = [
    {
      key: 'weights',
      label: 'base weights (NF4)',
      bytes: weights.total,
      detail: weightsDetail(arch, weights, s),
    },
    {
      key: 'lora',
      label: 'LoRA parameters (f32)',
      bytes: lora.bytes,
      detail: `r=${r}, ${targets.map((t) => t.name.replace('_proj', '')).join('/')} x ${arch.layers} layers, ${loraParams.toLocaleString('en-US')} params`,
    },
    { key: 'loraGrads', label: 'LoRA gradients (f32)', bytes: loraGrads, detail: 'one buffer, accumulated over micro-batches' },
    {
      key: 'optimizer',
      label: `optimizer (AdamW ${s.optimizer === 'adamw_8bit' ? '8-bit' : '32-bit'})`,
      bytes: optimizer,
      detail: s.optimizer === 'adamw_8bit' ? `2 bytes per param + f32 absmax per ${OPTIM8_BLOCK}` : '2 x f32 per param',
    },
    {
      key: 'activations',
      label: s.gradientCheckpointing ? 'activations (gradient checkpointing)' : 'activations (no checkpointing)',
      bytes: activationsTotal,
      detail: s.gradientCheckpointing
        ? `${arch.layers} layer inputs ${formatBytes(checkpoints)} + one layer's recompute ${formatBytes(layersBytes)} + final norm ${formatBytes(head)}`
        : `${arch.layers} layers x ${formatBytes(layersBytes / arch.layers)} + final norm ${formatBytes(head)}`,
    },
    {
      key: 'lmHead',
      label: 'lm_head + cross-entropy workspace',
      bytes: lmHeadBytes,
      detail: `${chunkTokens} tokens x ${V} vocab, f32`,
    },
    {
      key: 'temporaries',
      label: 'temporary buffers',
      bytes: temporaries.total,
      detail:
        `backward ${formatBytes(backward)}, batch inputs ${formatBytes(inputs)}, RoPE tables ${formatBytes(rope)}` +
        (dequantScratch ? `, dequantized weight ${formatBytes(dequantScratch)}` : ''),
    },
    { key: 'kvCache', label: `KV cache for chat (${s.chatContext} tokens, ${a})`, bytes: kvCache.bytes, detail: `${arch.layers} layers x K,V x ${Hkv}` },
    { key: 'chat', label: 'chat logits', bytes: chat, detail: `${V} x f32` },
  ];

  // ---- per-buffer limits
  const limits = {
    maxBufferSize: gpu.limits?.maxBufferSize ?? SPEC_DEFAULT_LIMITS.maxBufferSize,
    maxStorageBufferBindingSize: gpu.limits?.maxStorageBufferBindingSize ?? SPEC_DEFAULT_LIMITS.maxStorageBufferBindingSize,
    source: (gpu.limits?.maxBufferSize !== undefined && gpu.limits?.maxStorageBufferBindingSize !== undefined
      ? 'device'
      : 'spec-default') as 'device' | 'spec-default',
  };
  const bigLinear = arch.linears.reduce((m, l) => (l.out * l.in > m.out * m.in ? l : m));
  const bigNf4 = nf4Bytes(bigLinear.out * bigLinear.in, weights.doubleQuant, blocksizeOf(arch));
  const needs: [string, number][] = [
    [`embed_tokens [${V}, ${H}] ${s.embeddingDtype}`, weights.embedding],
    ...(arch.tiedEmbeddings ? [] : ([[`lm_head [${V}, ${H}] ${s.embeddingDtype}`, weights.lmHead]] as [string, number][])),
    [`${bigLinear.name} NF4 codes [${bigLinear.out}, ${bigLinear.in}]`, bigNf4.nf4],
    [`residual stream [${N}, ${H}] f32`, N * H * 4],
    ...(s.gradientCheckpointing
      ? ([[`layer checkpoint [${N}, ${H}] ${s.checkpointDtype}`, N * H * BYTES[s.checkpointDtype]]] as [string, number][])
      : []),
    [`MLP activation [${N}, ${F}] ${a}`, N * F * BYTES[a]],
    [`lm_head logits chunk [${chunkTokens}, ${V}] f32`, chunkTokens * V * 4],
    [`KV cache, one layer's K [${s.chatContext}, ${Hkv}] ${a}`, s.chatContext * Hkv * BYTES[a]],
  ];
  if (weights.unquantized) {
    const big = arch.linears.filter((l) => isUnquantized(arch, l)).reduce((m, l) => Math.max(m, l.out * l.in), 0);
    needs.push([`unquantized linear (f16)`, big * 2]);
  }
  if (dequantScratch) needs.push([`dequantized weight scratch (${a})`, dequantScratch]);
  const buffers = needs.map(([name, bytes]) => checkBuffer(name, bytes, limits));
  const logits = buffers.find((b) => b.name.startsWith('lm_head logits chunk'));
  if (logits?.message) {
    logits.message += `; or set lmHeadChunk to at most ${maxLmHeadChunk(arch, limits.maxStorageBufferBindingSize)} tokens`;
  }
  const largestBuffer = buffers.reduce((m, b) => (b.bytes > m.bytes ? b : m));

  // ---- verdict and warnings
  const warnings: string[] = [];
  for (const b of buffers) if (b.message) warnings.push(b.message);
  if (s.seqLen > arch.maxPositions) {
    warnings.push(`seqLen ${s.seqLen} is longer than the model's max_position_embeddings (${arch.maxPositions})`);
  }
  if (arch.slidingWindow !== null && s.seqLen > arch.slidingWindow) {
    warnings.push(`seqLen ${s.seqLen} is longer than the model's sliding window (${arch.slidingWindow}): attention must apply the window`);
  }
  if (s.chatContext > arch.maxPositions) {
    warnings.push(`chat context ${s.chatContext} is longer than the model's max_position_embeddings (${arch.maxPositions})`);
  }
  const deviceMemoryBytes = gpu.deviceMemoryBytes ?? null;
  let fits: boolean | null = null;
  let verdict: string;
  if (deviceMemoryBytes === null) {
    verdict = 'GPU memory unknown (WebGPU does not report it): enter it or pick a preset to check the total; only per-buffer limits were checked';
    warnings.push(verdict);
  } else {
    fits = totalBytes <= deviceMemoryBytes;
    if (fits) {
      verdict = `fits in ${formatBytes(deviceMemoryBytes)} with ${formatBytes(deviceMemoryBytes - totalBytes)} to spare`;
      if (totalBytes > 0.9 * deviceMemoryBytes) {
        warnings.push(`tight: ${formatBytes(totalBytes)} of ${formatBytes(deviceMemoryBytes)}; the browser, the page and the driver need memory too`);
      }
    } else {
      verdict = `does not fit in ${formatBytes(deviceMemoryBytes)}: ${formatBytes(totalBytes - deviceMemoryBytes)} over`;
      warnings.push(`${verdict}; ${suggestions(s).join(', ')}`);
    }
  }

  const lines = [
    ...items.map((i) => `${i.label}: ${formatBytes(i.bytes)} (${i.detail})`),
    `total: ${formatBytes(totalBytes)} (training ${formatBytes(trainingBytes)}, chat alone ${formatBytes(chatBytes)})`,
    `largest buffer: ${largestBuffer.name}, ${formatBytes(largestBuffer.bytes)}`,
    verdict,
  ];

  return {
    settings: s,
    tokens: N,
    weights,
    lora,
    loraGrads,
    optimizer,
    activations: { tensors, checkpoints, layers: layersBytes, head, total: activationsTotal },
    lmHead: { chunkTokens, bytes: lmHeadBytes },
    temporaries,
    kvCache,
    chat,
    trainingBytes,
    chatBytes,
    totalBytes,
    items,
    buffers,
    largestBuffer,
    limits,
    deviceMemoryBytes,
    fits,
    warnings,
    lines,
    assumptions,
  };
}

function resolveSettings(arch: ModelArch, p: PlanSettings, gpu: PlannerGpu): Required<PlanSettings> {
  for (const k of ['batchSize', 'seqLen', 'loraR', 'lmHeadChunk'] as const) {
    if (!Number.isInteger(p[k]) || p[k] <= 0) throw new RangeError(`planMemory: ${k} must be a positive integer (got ${p[k]})`);
  }
  if (p.chatContext !== undefined && (!Number.isInteger(p.chatContext) || p.chatContext <= 0)) {
    throw new RangeError(`planMemory: chatContext must be a positive integer (got ${p.chatContext})`);
  }
  for (const t of p.targets) {
    if (!LINEAR_NAMES.includes(t)) throw new RangeError(`planMemory: unknown LoRA target "${t}"; targets are ${LINEAR_NAMES.join(', ')}`);
  }
  return {
    batchSize: p.batchSize,
    seqLen: p.seqLen,
    loraR: p.loraR,
    targets: [...p.targets],
    gradientCheckpointing: p.gradientCheckpointing,
    optimizer: p.optimizer,
    activationDtype: p.activationDtype,
    lmHeadChunk: p.lmHeadChunk,
    checkpointDtype: p.checkpointDtype ?? p.activationDtype,
    chatContext: p.chatContext ?? p.seqLen,
    doubleQuant: arch.quantization.method === 'bnb-nf4' ? arch.quantization.doubleQuant : (p.doubleQuant ?? true),
    embeddingDtype: p.embeddingDtype ?? embeddingDtypeFor(gpu),
    fusedDequant: p.fusedDequant ?? true,
  };
}

function blocksizeOf(arch: ModelArch): number {
  return arch.quantization.method === 'bnb-nf4' ? (arch.quantization.blocksize ?? NF4_BLOCK) : NF4_BLOCK;
}

/** A linear a bnb checkpoint keeps unquantized (skip modules); checked on layer 0's path and all layers. */
function isUnquantized(arch: ModelArch, l: LinearSpec, layer?: number): boolean {
  if (arch.quantization.method !== 'bnb-nf4' || arch.quantization.skipModules.length === 0) return false;
  const skip = arch.quantization.skipModules;
  if (layer !== undefined) return isSkippedModule(skip, linearModulePath(layer, l));
  for (let i = 0; i < arch.layers; i++) if (isSkippedModule(skip, linearModulePath(i, l))) return true;
  return false;
}

function planWeights(arch: ModelArch, s: Required<PlanSettings>): WeightsPlan {
  const bs = blocksizeOf(arch);
  let nf4 = 0;
  let absmax = 0;
  let unquantized = 0;
  let quantizedLinears = 0;
  let unquantizedLinears = 0;
  // On the GPU the engine holds the decoded f32 absmax whether or not the checkpoint or the
  // download double-quantizes it (nf4.ts); the compressed form only matters for file sizes.
  const perLinear = arch.linears.map((l) => nf4Bytes(l.out * l.in, false, bs));
  for (let i = 0; i < arch.layers; i++) {
    arch.linears.forEach((l, j) => {
      if (isUnquantized(arch, l, i)) {
        unquantized += l.out * l.in * 2;
        unquantizedLinears++;
      } else {
        nf4 += perLinear[j].nf4;
        absmax += perLinear[j].absmax;
        quantizedLinears++;
      }
    });
  }
  const biases = arch.params.perLayer.bias * arch.layers * 4;
  const norms = (arch.params.perLayer.norm * arch.layers + arch.params.finalNorm) * 4;
  const e = BYTES[s.embeddingDtype];
  const embedding = arch.params.embedding * e;
  const lmHead = arch.params.lmHead * e;
  const codeTables = 0; // the NF4 and dynamic-map tables are WGSL constants, not buffers
  return {
    nf4,
    absmax,
    unquantized,
    biases,
    norms,
    embedding,
    lmHead,
    codeTables,
    total: nf4 + absmax + unquantized + biases + norms + embedding + lmHead + codeTables,
    doubleQuant: s.doubleQuant,
    quantizedLinears,
    unquantizedLinears,
  };
}

function weightsDetail(arch: ModelArch, w: WeightsPlan, s: Required<PlanSettings>): string {
  const parts = [`linears ${formatBytes(w.nf4)} NF4 + ${formatBytes(w.absmax)} absmax`];
  if (w.unquantized) parts.push(`${w.unquantizedLinears} unquantized linears ${formatBytes(w.unquantized)} f16`);
  parts.push(`embed_tokens ${formatBytes(w.embedding)} ${s.embeddingDtype}`);
  parts.push(arch.tiedEmbeddings ? 'lm_head tied' : `lm_head ${formatBytes(w.lmHead)} ${s.embeddingDtype}`);
  parts.push(`norms${w.biases ? ' + biases' : ''} ${formatBytes(w.norms + w.biases)} f32`);
  return parts.join(', ');
}

/** What one decoder layer keeps from its forward for its backward, apart from its input. */
function savedPerLayer(arch: ModelArch, s: Required<PlanSettings>, N: number): TensorPlan[] {
  const a = s.activationDtype;
  const H = arch.hidden;
  const F = arch.intermediate;
  const Hq = arch.heads * arch.headDim;
  const Hkv = arch.kvHeads * arch.headDim;
  const out = [
    tensor('input norm rstd', [N], 'f32'),
    tensor('input norm output (q/k/v input)', [N, H], a),
  ];
  if (arch.qkNorm) {
    out.push(
      tensor('q before q_norm', [N, Hq], a),
      tensor('k before k_norm', [N, Hkv], a),
      tensor('q_norm/k_norm rstd', [N, arch.heads + arch.kvHeads], 'f32'),
    );
  }
  out.push(
    tensor('q (after RoPE)', [N, Hq], a),
    tensor('k (after RoPE)', [N, Hkv], a),
    tensor('v', [N, Hkv], a),
    tensor('attention output (o_proj input)', [N, Hq], a),
    tensor('attention logsumexp', [N, arch.heads], 'f32'),
    tensor('residual after attention', [N, H], 'f32'),
    tensor('post-attention norm rstd', [N], 'f32'),
    tensor('post-attention norm output (gate/up input)', [N, H], a),
    tensor('gate', [N, F], a),
    tensor('up', [N, F], a),
    tensor('silu(gate)*up (down_proj input)', [N, F], a),
  );
  for (const l of arch.linears) {
    if (s.targets.includes(l.name)) out.push(tensor(`LoRA x·Aᵀ for ${l.name}`, [N, s.loraR], 'f32'));
  }
  return out;
}

function checkBuffer(name: string, bytes: number, limits: { maxBufferSize: number; maxStorageBufferBindingSize: number }): BufferCheck {
  const buffers = Math.max(1, Math.ceil(bytes / limits.maxBufferSize));
  const bindings = Math.max(1, Math.ceil(bytes / limits.maxStorageBufferBindingSize));
  const check: BufferCheck = { name, bytes, buffers, bindings };
  if (buffers > 1) {
    check.message =
      `${name} is ${formatBytes(bytes)}, over maxBufferSize (${formatBytes(limits.maxBufferSize)}): ` +
      `it must be split into ${buffers} buffers (${bindings} storage bindings of at most ${formatBytes(limits.maxStorageBufferBindingSize)})`;
  } else if (bindings > 1) {
    check.message =
      `${name} is ${formatBytes(bytes)}, over maxStorageBufferBindingSize (${formatBytes(limits.maxStorageBufferBindingSize)}): ` +
      `it must be split across ${bindings} bindings`;
  }
  return check;
}

function suggestions(s: Required<PlanSettings>): string[] {
  const out: string[] = [];
  if (!s.gradientCheckpointing) out.push('turn on gradient checkpointing');
  if (s.batchSize > 1) out.push('lower the batch size (raise gradient accumulation to keep the effective batch)');
  out.push('shorten max_seq_length');
  if (s.activationDtype === 'f32') out.push('use f16 activations');
  if (s.optimizer === 'adamw_32bit') out.push('use AdamW 8-bit');
  out.push('or pick a smaller model');
  return out;
}
