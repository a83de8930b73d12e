// Model architecture from a Hub config.json: which family it is, every dimension the engine needs,
// RoPE and quantization settings, the linear layers of a decoder layer with their shapes, parameter
// counts and the transformers state-dict names. Works from config.json alone, so an unsupported
// model is refused before a single weight is downloaded. Names mirror transformers' config fields
// (hidden_size -> hidden, num_key_value_heads -> kvHeads, ...); defaults are transformers' own.
// Pure functions: no GPU, no DOM.

export type ModelFamily = 'llama' | 'mistral' | 'qwen2' | 'qwen3';

export const SUPPORTED_FAMILIES: readonly ModelFamily[] = ['llama', 'mistral', 'qwen2', 'qwen3'];

/** What the refusal message lists, in people's words. */
export const SUPPORTED_DESCRIPTION = 'llama (Llama 2/3/3.1/3.2, SmolLM, TinyLlama), mistral, qwen2, qwen3';

/** The seven linear layers of a decoder layer, in the order transformers declares them. */
export type LinearName = 'q_proj' | 'k_proj' | 'v_proj' | 'o_proj' | 'gate_proj' | 'up_proj' | 'down_proj';

export const LINEAR_NAMES: readonly LinearName[] = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

export interface LinearSpec {
  name: LinearName;
  /** The submodule that holds it: `self_attn` or `mlp`. */
  module: 'self_attn' | 'mlp';
  /** nn.Linear weight layout [out, in]. */
  out: number;
  in: number;
  bias: boolean;
}

export type RopeScaling =
  | { type: 'none' }
  | { type: 'linear'; factor: number }
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositions: number };

export type TorchDtype = 'float32' | 'float16' | 'bfloat16';

export type Quantization =
  | { method: 'none' }
  | {
      method: 'bnb-nf4';
      doubleQuant: boolean;
      /** bnb_4bit_compute_dtype (what bitsandbytes would compute in; we compute in f32/f16). */
      computeDtype: TorchDtype;
      /** Not in config.json (it lives in each tensor's quant_state); set once a weight is read. */
      blocksize?: number;
      /** llm_int8_skip_modules: modules kept unquantized (matched as transformers does). */
      skipModules: string[];
    };

export interface ParamCounts {
  embedding: number;
  /** 0 when tied to the embedding. */
  lmHead: number;
  finalNorm: number;
  perLayer: { linear: number; bias: number; norm: number; total: number };
  /** All decoder layers together. */
  layers: number;
  /** The frozen linear weights of all layers (what QLoRA quantizes). */
  linear: number;
  total: number;
}

export interface ModelArch {
  family: ModelFamily;
  /** config.model_type as written. */
  modelType: string;
  architectures: string[];
  vocabSize: number;
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  kvHeads: number;
  /** head_dim when given (Qwen3, Llama 3.2), else hidden / heads. */
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling;
  maxPositions: number;
  tiedEmbeddings: boolean;
  /** True when any attention projection has a bias (Qwen2: q/k/v; Llama attention_bias: q/k/v/o). */
  attentionBias: boolean;
  /** Qwen3: RMSNorm over head_dim on q and k before RoPE (q_norm / k_norm). */
  qkNorm: boolean;
  /** Mistral's sliding attention window in tokens; null when attention is full. */
  slidingWindow: number | null;
  bosTokenId: number | null;
  /** eos_token_id as a list (Llama 3.1 Instruct has three). */
  eosTokenIds: number[];
  padTokenId: number | null;
  /** torch_dtype (or `dtype`) of the checkpoint; null when the config does not say. */
  torchDtype: TorchDtype | null;
  quantization: Quantization;
  /** The linear layers of one decoder layer (every layer has the same). */
  linears: LinearSpec[];
  params: ParamCounts;
  /** Fields that were absent and took transformers' default, for people to see. */
  defaulted: string[];
}

/** The model is one the engine cannot run (architecture, quantization, RoPE variant, feature). */
export class UnsupportedModelError extends Error {
  constructor(
    readonly reason: 'architecture' | 'quantization' | 'rope' | 'feature',
    message: string,
  ) {
    super(message);
    this.name = 'UnsupportedModelError';
  }
}

/** config.json is malformed: a field is missing, of the wrong type, or inconsistent. */
export class ModelConfigError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
    this.name = 'ModelConfigError';
  }
}

type Json = Record<string, unknown>;

const ARCHITECTURE_CLASS: Record<ModelFamily, string> = {
  llama: 'LlamaForCausalLM',
  mistral: 'MistralForCausalLM',
  qwen2: 'Qwen2ForCausalLM',
  qwen3: 'Qwen3ForCausalLM',
};

/** transformers' defaults for fields a config may leave out (LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config). */
const DEFAULTS: Record<ModelFamily, { rmsNormEps: number; ropeTheta: number; maxPositions: number; kvHeads: number | 'heads' }> = {
  llama: { rmsNormEps: 1e-6, ropeTheta: 10000, maxPositions: 2048, kvHeads: 'heads' },
  mistral: { rmsNormEps: 1e-6, ropeTheta: 10000, maxPositions: 4096 * 32, kvHeads: 8 },
  qwen2: { rmsNormEps: 1e-6, ropeTheta: 10000, maxPositions: 32768, kvHeads: 32 },
  qwen3: { rmsNormEps: 1e-6, ropeTheta: 10000, maxPositions: 32768, kvHeads: 32 },
};

/** Quantization methods people meet on the Hub, by transformers' quant_method, for the refusal message. */
const QUANT_METHOD_NAMES: Record<string, string> = {
  gptq: 'GPTQ',
  awq: 'AWQ',
  aqlm: 'AQLM',
  exl2: 'EXL2',
  eetq: 'EETQ',
  hqq: 'HQQ',
  quanto: 'Quanto',
  fbgemm_fp8: 'FP8 (fbgemm)',
  fp8: 'FP8',
  'compressed-tensors': 'compressed-tensors',
  torchao: 'torchao',
  bitnet: 'BitNet',
  vptq: 'VPTQ',
  higgs: 'HIGGS',
  spqr: 'SpQR',
  mxfp4: 'MXFP4',
  'auto-round': 'AutoRound',
  gguf: 'GGUF',
};

const PICK_ANOTHER = 'pick the original model or a bitsandbytes 4-bit (bnb-4bit) one';

/** Reads a Hub config.json (already JSON-parsed) into a ModelArch, or throws UnsupportedModelError
 * / ModelConfigError with a message that names the model type or the field. */
export function parseModelConfig(json: unknown): ModelArch {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new ModelConfigError('', 'config.json must be a JSON object');
  }
  const c = json as Json;
  const defaulted: string[] = [];

  const architectures = readArchitectures(c);
  const family = readFamily(c, architectures);
  const modelType = typeof c.model_type === 'string' ? c.model_type : family;

  checkFeatures(c, family);

  const vocabSize = requirePositiveInt(c, 'vocab_size');
  const hidden = requirePositiveInt(c, 'hidden_size');
  const intermediate = requirePositiveInt(c, 'intermediate_size');
  const layers = requirePositiveInt(c, 'num_hidden_layers');
  const heads = requirePositiveInt(c, 'num_attention_heads');
  const d = DEFAULTS[family];

  let kvHeads: number;
  if (c.num_key_value_heads === undefined || c.num_key_value_heads === null) {
    kvHeads = d.kvHeads === 'heads' ? heads : d.kvHeads;
    defaulted.push('num_key_value_heads');
  } else {
    kvHeads = requirePositiveInt(c, 'num_key_value_heads');
  }
  if (heads % kvHeads !== 0) {
    throw new ModelConfigError(
      'num_key_value_heads',
      `config.json: num_attention_heads (${heads}) must be a multiple of num_key_value_heads (${kvHeads})`,
    );
  }

  let headDim: number;
  if (c.head_dim === undefined || c.head_dim === null) {
    if (hidden % heads !== 0) {
      throw new ModelConfigError(
        'head_dim',
        `config.json: hidden_size (${hidden}) is not a multiple of num_attention_heads (${heads}) and head_dim is not given`,
      );
    }
    headDim = hidden / heads;
  } else {
    headDim = requirePositiveInt(c, 'head_dim');
  }
  if (headDim % 2 !== 0) throw new ModelConfigError('head_dim', `config.json: head_dim (${headDim}) must be even for RoPE`);

  const rmsNormEps = optionalPositiveNumber(c, 'rms_norm_eps', d.rmsNormEps, defaulted);
  const ropeParameters = readRopeParameters(c);
  let ropeTheta: number;
  if (c.rope_theta !== undefined && c.rope_theta !== null) ropeTheta = requirePositiveNumber(c, 'rope_theta');
  else if (ropeParameters && ropeParameters.rope_theta !== undefined) {
    ropeTheta = requirePositiveNumber(ropeParameters, 'rope_theta', 'rope_parameters.');
  } else {
    ropeTheta = d.ropeTheta;
    defaulted.push('rope_theta');
  }
  const ropeScaling = readRopeScaling(c, ropeParameters);
  const maxPositions = optionalPositiveInt(c, 'max_position_embeddings', d.maxPositions, defaulted);

  let tiedEmbeddings = false;
  if (c.tie_word_embeddings === undefined || c.tie_word_embeddings === null) defaulted.push('tie_word_embeddings');
  else tiedEmbeddings = requireBoolean(c, 'tie_word_embeddings');

  // Attention biases: Qwen2 always has q/k/v biases (and none on o_proj); Llama and Qwen3 follow
  // attention_bias for all four projections; Mistral has none.
  const flag = c.attention_bias === undefined || c.attention_bias === null ? false : requireBoolean(c, 'attention_bias');
  const biasOf: Record<'q' | 'o', boolean> =
    family === 'qwen2' ? { q: true, o: false } : family === 'mistral' ? { q: false, o: false } : { q: flag, o: flag };

  const qkNorm = family === 'qwen3';
  const slidingWindow = readSlidingWindow(c, family);

  const qOut = heads * headDim;
  const kvOut = kvHeads * headDim;
  const linears: LinearSpec[] = [
    { name: 'q_proj', module: 'self_attn', out: qOut, in: hidden, bias: biasOf.q },
    { name: 'k_proj', module: 'self_attn', out: kvOut, in: hidden, bias: biasOf.q },
    { name: 'v_proj', module: 'self_attn', out: kvOut, in: hidden, bias: biasOf.q },
    { name: 'o_proj', module: 'self_attn', out: hidden, in: qOut, bias: biasOf.o },
    { name: 'gate_proj', module: 'mlp', out: intermediate, in: hidden, bias: false },
    { name: 'up_proj', module: 'mlp', out: intermediate, in: hidden, bias: false },
    { name: 'down_proj', module: 'mlp', out: hidden, in: intermediate, bias: false },
  ];

  const arch: Omit<ModelArch, 'params'> = {
    family,
    modelType,
    architectures,
    vocabSize,
    hidden,
    intermediate,
    layers,
    heads,
    kvHeads,
    headDim,
    rmsNormEps,
    ropeTheta,
    ropeScaling,
    maxPositions,
    tiedEmbeddings,
    attentionBias: biasOf.q || biasOf.o,
    qkNorm,
    slidingWindow,
    bosTokenId: optionalTokenId(c, 'bos_token_id'),
    eosTokenIds: readEos(c),
    padTokenId: optionalTokenId(c, 'pad_token_id'),
    torchDtype: readTorchDtype(c),
    quantization: readQuantization(c),
    linears,
    defaulted,
  };
  return { ...arch, params: countParams(arch) };
}

// ---------------------------------------------------------------------------------------------
// Family and feature checks

function unsupportedArchitecture(name: string): UnsupportedModelError {
  return new UnsupportedModelError(
    'architecture',
    `architecture ${name} is not supported yet; supported: ${SUPPORTED_DESCRIPTION}`,
  );
}

function readArchitectures(c: Json): string[] {
  const a = c.architectures;
  if (a === undefined || a === null) return [];
  if (!Array.isArray(a) || a.some((x) => typeof x !== 'string')) {
    throw new ModelConfigError('architectures', 'config.json: architectures must be a list of class names');
  }
  return a as string[];
}

function readFamily(c: Json, architectures: string[]): ModelFamily {
  const mt = c.model_type;
  if (mt !== undefined && typeof mt !== 'string') {
    throw new ModelConfigError('model_type', 'config.json: model_type must be a string');
  }
  let family: ModelFamily | undefined;
  if (typeof mt === 'string') {
    if (!(SUPPORTED_FAMILIES as readonly string[]).includes(mt)) {
      const cls = architectures[0];
      throw unsupportedArchitecture(cls ? `${mt} (${cls})` : mt);
    }
    family = mt as ModelFamily;
  } else {
    // No model_type: fall back on the class name, as AutoConfig cannot.
    family = SUPPORTED_FAMILIES.find((f) => architectures.includes(ARCHITECTURE_CLASS[f]));
    if (!family) {
      if (architectures.length) throw unsupportedArchitecture(architectures[0]);
      throw new ModelConfigError('model_type', 'config.json: model_type is missing (and no known architectures entry)');
    }
  }
  // A supported model_type with a head other than the causal LM (e.g. LlamaForSequenceClassification).
  if (architectures.length && !architectures.includes(ARCHITECTURE_CLASS[family])) {
    throw new UnsupportedModelError(
      'architecture',
      `architecture ${architectures[0]} is not supported yet: only ${ARCHITECTURE_CLASS[family]} (a causal language model) can be fine-tuned; supported: ${SUPPORTED_DESCRIPTION}`,
    );
  }
  return family;
}

function checkFeatures(c: Json, family: ModelFamily): void {
  const act = c.hidden_act ?? c.hidden_activation;
  if (act !== undefined && act !== 'silu') {
    throw new UnsupportedModelError('feature', `hidden_act "${String(act)}" is not supported (only silu, as in ${family} models)`);
  }
  if (c.mlp_bias === true) {
    throw new UnsupportedModelError('feature', 'mlp_bias: true is not supported (biases on gate/up/down projections)');
  }
  if ((family === 'qwen2' || family === 'qwen3') && c.use_sliding_window === true) {
    throw new UnsupportedModelError(
      'feature',
      `use_sliding_window: true is not supported for ${family} (per-layer sliding attention); models with use_sliding_window: false are`,
    );
  }
}

function readSlidingWindow(c: Json, family: ModelFamily): number | null {
  if (family !== 'mistral') return null; // llama has none; qwen2/qwen3 only with use_sliding_window (refused above)
  if (c.sliding_window === undefined || c.sliding_window === null) return null;
  return requirePositiveInt(c, 'sliding_window');
}

// ---------------------------------------------------------------------------------------------
// RoPE

function readRopeParameters(c: Json): Json | null {
  const p = c.rope_parameters;
  if (p === undefined || p === null) return null;
  if (typeof p !== 'object' || Array.isArray(p)) throw new ModelConfigError('rope_parameters', 'config.json: rope_parameters must be an object');
  return p as Json;
}

function readRopeScaling(c: Json, ropeParameters: Json | null): RopeScaling {
  // transformers <= 4.x: rope_scaling {rope_type|type, factor, ...}; 5.x: rope_parameters {rope_type, rope_theta, ...}.
  const raw = c.rope_scaling ?? ropeParameters;
  const field = c.rope_scaling !== undefined && c.rope_scaling !== null ? 'rope_scaling' : 'rope_parameters';
  if (raw === undefined || raw === null) return { type: 'none' };
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new ModelConfigError(field, `config.json: ${field} must be an object or null`);
  const s = raw as Json;
  const type = s.rope_type ?? s.type ?? 'default';
  if (typeof type !== 'string') throw new ModelConfigError(`${field}.rope_type`, `config.json: ${field}.rope_type must be a string`);
  const prefix = `${field}.`;
  switch (type) {
    case 'default':
      return { type: 'none' };
    case 'linear':
      return { type: 'linear', factor: requirePositiveNumber(s, 'factor', prefix) };
    case 'llama3': {
      const r: RopeScaling = {
        type: 'llama3',
        factor: requirePositiveNumber(s, 'factor', prefix),
        lowFreqFactor: requirePositiveNumber(s, 'low_freq_factor', prefix),
        highFreqFactor: requirePositiveNumber(s, 'high_freq_factor', prefix),
        originalMaxPositions: requirePositiveNumber(s, 'original_max_position_embeddings', prefix),
      };
      if (r.highFreqFactor <= r.lowFreqFactor) {
        throw new ModelConfigError(
          `${prefix}high_freq_factor`,
          `config.json: ${prefix}high_freq_factor (${r.highFreqFactor}) must be greater than low_freq_factor (${r.lowFreqFactor})`,
        );
      }
      return r;
    }
    default:
      throw new UnsupportedModelError('rope', `RoPE scaling "${type}" (${field}) is not supported; supported: none, linear, llama3`);
  }
}

/** RoPE inverse frequencies inv_freq[i], i < headDim/2, with the model's scaling applied, as
 * transformers computes them (modeling_rope_utils: default, linear, `_compute_llama3_parameters`),
 * in float64 (transformers uses float32 tensors: expect differences of ~1e-7 relative). */
export function ropeInverseFrequencies(arch: Pick<ModelArch, 'headDim' | 'ropeTheta' | 'ropeScaling'>): Float64Array {
  const half = arch.headDim / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / Math.pow(arch.ropeTheta, (2 * i) / arch.headDim);
  const s = arch.ropeScaling;
  if (s.type === 'linear') {
    for (let i = 0; i < half; i++) inv[i] /= s.factor;
  } else if (s.type === 'llama3') {
    const lowFreqWavelen = s.originalMaxPositions / s.lowFreqFactor;
    const highFreqWavelen = s.originalMaxPositions / s.highFreqFactor;
    for (let i = 0; i < half; i++) {
      const wavelen = (2 * Math.PI) / inv[i];
      if (wavelen < highFreqWavelen) continue; // high frequencies: unchanged
      if (wavelen > lowFreqWavelen) {
        inv[i] /= s.factor; // low frequencies: scaled down by the factor
        continue;
      }
      // in between: blend the scaled and unscaled frequency
      const smooth = (s.originalMaxPositions / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
      inv[i] = ((1 - smooth) * inv[i]) / s.factor + smooth * inv[i];
    }
  }
  return inv;
}

/** ropeInverseFrequencies in float32, step by step as transformers computes its f32 inv_freq
 * tensor (every operation rounded to f32, Python scalars taken as f32): what the GPU's RoPE gets. */
export function ropeInverseFrequenciesF32(arch: Pick<ModelArch, 'headDim' | 'ropeTheta' | 'ropeScaling'>): Float32Array {
  const f = Math.fround;
  const half = arch.headDim / 2;
  const inv = new Float32Array(half);
  const base = f(arch.ropeTheta);
  // 1.0 / (base ** (arange(0, dim, 2).float() / dim))
  for (let i = 0; i < half; i++) inv[i] = f(1 / f(Math.pow(base, f(f(2 * i) / arch.headDim))));
  const s = arch.ropeScaling;
  if (s.type === 'linear') {
    for (let i = 0; i < half; i++) inv[i] = f(inv[i] / f(s.factor));
  } else if (s.type === 'llama3') {
    const lowFreqWavelen = s.originalMaxPositions / s.lowFreqFactor; // Python floats
    const highFreqWavelen = s.originalMaxPositions / s.highFreqFactor;
    const factor = f(s.factor);
    for (let i = 0; i < half; i++) {
      const wavelen = f(f(2 * Math.PI) / inv[i]);
      const scaled = wavelen > lowFreqWavelen ? f(inv[i] / factor) : inv[i];
      const medium = !(wavelen < highFreqWavelen) && !(wavelen > lowFreqWavelen);
      if (!medium) {
        inv[i] = scaled;
        continue;
      }
      const smooth = f(f(f(f(s.originalMaxPositions) / wavelen) - f(s.lowFreqFactor)) / f(s.highFreqFactor - s.lowFreqFactor));
      inv[i] = f(f(f(f(1 - smooth) * scaled) / factor) + f(smooth * scaled));
    }
  }
  return inv;
}

// ---------------------------------------------------------------------------------------------
// Quantization

function readQuantization(c: Json): Quantization {
  const q = c.quantization_config;
  if (q === undefined || q === null) return { method: 'none' };
  if (typeof q !== 'object' || Array.isArray(q)) throw new ModelConfigError('quantization_config', 'config.json: quantization_config must be an object');
  const qc = q as Json;
  const method = qc.quant_method ?? (qc.load_in_4bit !== undefined || qc.load_in_8bit !== undefined ? 'bitsandbytes' : undefined);
  if (typeof method !== 'string') {
    throw new ModelConfigError('quantization_config.quant_method', 'config.json: quantization_config.quant_method is missing');
  }
  if (method !== 'bitsandbytes') {
    const name = QUANT_METHOD_NAMES[method.toLowerCase()] ?? method;
    throw new UnsupportedModelError('quantization', `${name} checkpoints are not supported; ${PICK_ANOTHER}`);
  }
  if (qc.load_in_8bit === true) {
    throw new UnsupportedModelError('quantization', `bitsandbytes 8-bit (LLM.int8) checkpoints are not supported; ${PICK_ANOTHER}`);
  }
  if (qc.load_in_4bit !== true) {
    throw new ModelConfigError(
      'quantization_config.load_in_4bit',
      'config.json: quantization_config is bitsandbytes but neither load_in_4bit nor load_in_8bit is true',
    );
  }
  // BitsAndBytesConfig's default quant type is fp4.
  const quantType = qc.bnb_4bit_quant_type ?? 'fp4';
  if (quantType !== 'nf4') {
    throw new UnsupportedModelError('quantization', `bitsandbytes 4-bit "${String(quantType)}" checkpoints are not supported (only nf4); ${PICK_ANOTHER}`);
  }
  const storage = qc.bnb_4bit_quant_storage ?? 'uint8';
  if (storage !== 'uint8') {
    throw new UnsupportedModelError(
      'quantization',
      `bitsandbytes 4-bit checkpoints with bnb_4bit_quant_storage "${String(storage)}" are not supported (only uint8); ${PICK_ANOTHER}`,
    );
  }
  const dq = qc.bnb_4bit_use_double_quant ?? false;
  if (typeof dq !== 'boolean') {
    throw new ModelConfigError('quantization_config.bnb_4bit_use_double_quant', 'config.json: quantization_config.bnb_4bit_use_double_quant must be true or false');
  }
  const compute = qc.bnb_4bit_compute_dtype ?? 'float32';
  const computeDtype = toTorchDtype(compute);
  if (!computeDtype) {
    throw new ModelConfigError(
      'quantization_config.bnb_4bit_compute_dtype',
      `config.json: quantization_config.bnb_4bit_compute_dtype "${String(compute)}" is not one of float32, float16, bfloat16`,
    );
  }
  const skip = qc.llm_int8_skip_modules ?? [];
  if (!Array.isArray(skip) || skip.some((m) => typeof m !== 'string')) {
    throw new ModelConfigError('quantization_config.llm_int8_skip_modules', 'config.json: quantization_config.llm_int8_skip_modules must be a list of module names or null');
  }
  return { method: 'bnb-nf4', doubleQuant: dq, computeDtype, skipModules: skip as string[] };
}

/** The module path of a decoder-layer linear, e.g. "model.layers.3.self_attn.q_proj". */
export function linearModulePath(layer: number, linear: Pick<LinearSpec, 'module' | 'name'>): string {
  return `model.layers.${layer}.${linear.module}.${linear.name}`;
}

/** Whether a bnb checkpoint keeps this linear unquantized (llm_int8_skip_modules). As transformers
 * (`key == path or key + "." in path`), but on whole path segments, so "model.layers.1.mlp" never
 * matches layer 11. The loader has the final word: a 4-bit tensor carries a quant_state entry. */
export function isSkippedModule(skipModules: readonly string[], modulePath: string): boolean {
  return skipModules.some((key) => {
    if (modulePath === key) return true;
    const at = modulePath.indexOf(key);
    if (at < 0) return false;
    // Require whole path segments, so that "layers.1." does not match "layers.10.".
    const before = at === 0 || modulePath[at - 1] === '.';
    const end = at + key.length;
    const after = end === modulePath.length || modulePath[end] === '.' || key.endsWith('.');
    return before && after;
  });
}

// ---------------------------------------------------------------------------------------------
// Tokens, dtype

function optionalTokenId(c: Json, field: string): number | null {
  const v = c[field];
  if (v === undefined || v === null) return null;
  if (!isNonNegativeInt(v)) throw new ModelConfigError(field, `config.json: ${field} must be a token id (a non-negative integer)`);
  return v;
}

function readEos(c: Json): number[] {
  const v = c.eos_token_id;
  if (v === undefined || v === null) return [];
  if (isNonNegativeInt(v)) return [v];
  if (Array.isArray(v) && v.every(isNonNegativeInt)) return [...(v as number[])];
  throw new ModelConfigError('eos_token_id', 'config.json: eos_token_id must be a token id or a list of token ids');
}

function toTorchDtype(v: unknown): TorchDtype | null {
  if (typeof v !== 'string') return null;
  const s = v.startsWith('torch.') ? v.slice(6) : v;
  if (s === 'float32' || s === 'float16' || s === 'bfloat16') return s;
  if (s === 'float') return 'float32';
  if (s === 'half') return 'float16';
  return null;
}

function readTorchDtype(c: Json): TorchDtype | null {
  const field = c.torch_dtype !== undefined ? 'torch_dtype' : 'dtype';
  const v = c[field];
  if (v === undefined || v === null || v === 'auto') return null;
  const d = toTorchDtype(v);
  if (!d) {
    throw new UnsupportedModelError('feature', `${field} "${String(v)}" is not supported; supported: float32, float16, bfloat16`);
  }
  return d;
}

// ---------------------------------------------------------------------------------------------
// Parameter counts and tensor names

export function countParams(arch: Omit<ModelArch, 'params'>): ParamCounts {
  const linear = arch.linears.reduce((s, l) => s + l.out * l.in, 0);
  const bias = arch.linears.reduce((s, l) => s + (l.bias ? l.out : 0), 0);
  const norm = 2 * arch.hidden + (arch.qkNorm ? 2 * arch.headDim : 0);
  const perLayer = { linear, bias, norm, total: linear + bias + norm };
  const embedding = arch.vocabSize * arch.hidden;
  const lmHead = arch.tiedEmbeddings ? 0 : embedding;
  const finalNorm = arch.hidden;
  const layers = perLayer.total * arch.layers;
  return {
    embedding,
    lmHead,
    finalNorm,
    perLayer,
    layers,
    linear: linear * arch.layers,
    total: embedding + lmHead + finalNorm + layers,
  };
}

export type TensorKind = 'embedding' | 'lm_head' | 'norm' | 'linear' | 'bias';

export interface TensorSpec {
  /** transformers' state-dict name. */
  name: string;
  shape: number[];
  kind: TensorKind;
  /** For linear weights and biases: which linear. */
  linear?: LinearName;
}

/** The tensors of decoder layer `layer`, or with `layer` omitted the model-level ones
 * (model.embed_tokens.weight, model.norm.weight, lm_head.weight unless tied). */
export function tensorSpecs(arch: ModelArch, layer?: number): TensorSpec[] {
  if (layer === undefined) {
    const out: TensorSpec[] = [
      { name: 'model.embed_tokens.weight', shape: [arch.vocabSize, arch.hidden], kind: 'embedding' },
      { name: 'model.norm.weight', shape: [arch.hidden], kind: 'norm' },
    ];
    if (!arch.tiedEmbeddings) out.push({ name: 'lm_head.weight', shape: [arch.vocabSize, arch.hidden], kind: 'lm_head' });
    return out;
  }
  if (!Number.isInteger(layer) || layer < 0 || layer >= arch.layers) {
    throw new RangeError(`layer ${layer} is out of range (the model has ${arch.layers} layers)`);
  }
  const p = `model.layers.${layer}`;
  const out: TensorSpec[] = [{ name: `${p}.input_layernorm.weight`, shape: [arch.hidden], kind: 'norm' }];
  for (const l of arch.linears) {
    const path = linearModulePath(layer, l);
    out.push({ name: `${path}.weight`, shape: [l.out, l.in], kind: 'linear', linear: l.name });
    if (l.bias) out.push({ name: `${path}.bias`, shape: [l.out], kind: 'bias', linear: l.name });
    if (arch.qkNorm && l.name === 'k_proj') {
      out.push({ name: `${p}.self_attn.q_norm.weight`, shape: [arch.headDim], kind: 'norm' });
      out.push({ name: `${p}.self_attn.k_norm.weight`, shape: [arch.headDim], kind: 'norm' });
    }
  }
  out.push({ name: `${p}.post_attention_layernorm.weight`, shape: [arch.hidden], kind: 'norm' });
  return out;
}

/** Names only: tensorSpecs(arch, layer).map(t => t.name). */
export function tensorNames(arch: ModelArch, layer?: number): string[] {
  return tensorSpecs(arch, layer).map((t) => t.name);
}

/** Every tensor of the model: the model-level ones, then each layer's. */
export function allTensorSpecs(arch: ModelArch): TensorSpec[] {
  const out = tensorSpecs(arch);
  for (let i = 0; i < arch.layers; i++) out.push(...tensorSpecs(arch, i));
  return out;
}

/** One line for people: "llama, 32 layers, hidden 4096, 32/8 heads, vocab 128256, 8.03 B params, NF4 (bnb, double quant)". */
export function describeArch(arch: ModelArch): string {
  const p = arch.params.total;
  const size = p >= 1e9 ? `${(p / 1e9).toFixed(2)} B` : `${(p / 1e6).toFixed(1)} M`;
  const parts = [
    arch.family,
    `${arch.layers} layers`,
    `hidden ${arch.hidden}`,
    `${arch.heads}/${arch.kvHeads} heads`,
    `vocab ${arch.vocabSize}`,
    `${size} params`,
  ];
  if (arch.tiedEmbeddings) parts.push('tied embeddings');
  if (arch.ropeScaling.type !== 'none') parts.push(`RoPE ${arch.ropeScaling.type} x${arch.ropeScaling.factor}`);
  if (arch.quantization.method === 'bnb-nf4') parts.push(`NF4 (bnb${arch.quantization.doubleQuant ? ', double quant' : ''})`);
  return parts.join(', ');
}

// ---------------------------------------------------------------------------------------------
// Field readers: every message names the field.

function isNonNegativeInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0;
}

function requirePositiveInt(o: Json, field: string, prefix = ''): number {
  const v = o[field];
  if (v === undefined || v === null) throw new ModelConfigError(prefix + field, `config.json: ${prefix}${field} is missing`);
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
    throw new ModelConfigError(prefix + field, `config.json: ${prefix}${field} must be a positive integer (got ${JSON.stringify(v)})`);
  }
  return v;
}

function optionalPositiveInt(o: Json, field: string, fallback: number, defaulted: string[]): number {
  if (o[field] === undefined || o[field] === null) {
    defaulted.push(field);
    return fallback;
  }
  return requirePositiveInt(o, field);
}

function requirePositiveNumber(o: Json, field: string, prefix = ''): number {
  const v = o[field];
  if (v === undefined || v === null) throw new ModelConfigError(prefix + field, `config.json: ${prefix}${field} is missing`);
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
    throw new ModelConfigError(prefix + field, `config.json: ${prefix}${field} must be a positive number (got ${JSON.stringify(v)})`);
  }
  return v;
}

function optionalPositiveNumber(o: Json, field: string, fallback: number, defaulted: string[]): number {
  if (o[field] === undefined || o[field] === null) {
    defaulted.push(field);
    return fallback;
  }
  return requirePositiveNumber(o, field);
}

function requireBoolean(o: Json, field: string): boolean {
  const v = o[field];
  if (typeof v !== 'boolean') throw new ModelConfigError(field, `config.json: ${field} must be true or false (got ${JSON.stringify(v)})`);
  return v;
}
