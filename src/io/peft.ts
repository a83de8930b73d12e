// PEFT LoRA adapters (specs/formats.md §4): adapter_config.json with the key set peft 0.21 writes,
// adapter_model.safetensors with PEFT's key names and shapes, a README model card, a .zip of the
// three, and the reader that loads such an adapter back (resume, import) checked against a model.
//
// Keys: base_model.model.model.layers.{i}.{self_attn|mlp}.{name}.lora_A.weight [r, in] and
// .lora_B.weight [out, r], f32. scaling = lora_alpha / r, or lora_alpha / sqrt(r) with rsLoRA.

import { bytesSource, openSafetensors, safetensorsFileSize, writeSafetensors, type TensorReader, type TensorToWrite } from './safetensors.ts';
import type { ByteSource } from './safetensors.ts';
import { f32ToBytesLE } from './dtype.ts';
import { textFile, zipStream } from './export-files.ts';
import type { ExportFile } from './export-files.ts';
import { linearPath } from './export-arch.ts';
import type { ExportArch, ExportLinear } from './export-arch.ts';

export class PeftError extends Error {
  override name = 'PeftError';
}

export const PEFT_VERSION = '0.21.0';
export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';

/** LoRA settings with PEFT's meanings (LoraConfig field names in camelCase). */
export interface LoraSettings {
  r: number;
  loraAlpha: number;
  /** Module names: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj. */
  targetModules: readonly string[];
  /** Default 0. */
  loraDropout?: number;
  /** Default false. */
  useRslora?: boolean;
  /** Hub id of the base model (e.g. "unsloth/Meta-Llama-3.1-8B-bnb-4bit"). */
  baseModelNameOrPath?: string | null;
  revision?: string | null;
  /** Only these layer indices carry LoRA (default: all). */
  layersToTransform?: readonly number[] | null;
}

/** One adapted linear: A [r, in] and B [out, r], row-major f32. */
export interface LoraModule {
  a: Float32Array;
  b: Float32Array;
}

export interface LoraAdapter {
  settings: LoraSettings;
  /** By module path, e.g. "model.layers.0.self_attn.q_proj". */
  modules: Map<string, LoraModule>;
}

/** PEFT's scaling: alpha / r, or alpha / sqrt(r) with rsLoRA. */
export function loraScaling(s: Pick<LoraSettings, 'r' | 'loraAlpha' | 'useRslora'>): number {
  return s.useRslora ? s.loraAlpha / Math.sqrt(s.r) : s.loraAlpha / s.r;
}

/** The adapted linears of a model: path, shapes. Throws for targets the model does not have. */
export function loraTargets(arch: ExportArch, s: LoraSettings): { path: string; layer: number; linear: ExportLinear }[] {
  if (!Number.isInteger(s.r) || s.r <= 0) throw new PeftError(`r must be a positive integer, got ${s.r}`);
  if (s.targetModules.length === 0) throw new PeftError('target_modules is empty: nothing would be trained');
  const known = new Set(arch.linears.map((l) => l.name));
  for (const t of s.targetModules) {
    if (!known.has(t)) throw new PeftError(`target module ${JSON.stringify(t)} is not a linear of this model (${[...known].join(', ')})`);
  }
  const layers = s.layersToTransform ?? null;
  const out: { path: string; layer: number; linear: ExportLinear }[] = [];
  for (let i = 0; i < arch.layers; i++) {
    if (layers !== null && !layers.includes(i)) continue;
    for (const l of arch.linears) if (s.targetModules.includes(l.name)) out.push({ path: linearPath(i, l), layer: i, linear: l });
  }
  return out;
}

export function peftKey(modulePath: string, which: 'A' | 'B'): string {
  return `base_model.model.${modulePath}.lora_${which}.weight`;
}

// ---------------------------------------------------------------------------------------------
// adapter_config.json

/** A number Python's json writes as a float (0.0, 1e-05). */
class PyFloat {
  constructor(readonly value: number) {}
}

/** adapter_config.json as an object, with every key peft 0.21 writes (values for a plain LoRA). */
export function adapterConfig(s: LoraSettings): Record<string, unknown> {
  const c: Record<string, unknown> = {
    alora_invocation_tokens: null,
    alpha_pattern: {},
    arrow_config: null,
    auto_mapping: null,
    base_model_name_or_path: s.baseModelNameOrPath ?? null,
    bias: 'none',
    corda_config: null,
    ensure_weight_tying: false,
    eva_config: null,
    exclude_modules: null,
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    kasa_config: null,
    layer_replication: null,
    layers_pattern: null,
    layers_to_transform: s.layersToTransform ? [...s.layersToTransform] : null,
    loftq_config: {},
    lora_alpha: s.loraAlpha,
    lora_bias: false,
    lora_dropout: s.loraDropout ?? 0,
    lora_ga_config: null,
    megatron_config: null,
    megatron_core: 'megatron.core',
    modules_to_save: null,
    monteclora_config: null,
    peft_type: 'LORA',
    peft_version: PEFT_VERSION,
    qalora_group_size: 16,
    r: s.r,
    rank_pattern: {},
    revision: s.revision ?? null,
    target_modules: [...s.targetModules],
    target_parameters: null,
    task_type: 'CAUSAL_LM',
    trainable_token_indices: null,
    use_bdlora: null,
    use_dora: false,
    use_qalora: false,
    use_rslora: s.useRslora ?? false,
    velora_config: null,
  };
  return c;
}

/** adapter_config.json text exactly as peft writes it (json.dumps(indent=2, sort_keys=True)). */
export function adapterConfigJson(s: LoraSettings): string {
  const c = adapterConfig(s);
  c.lora_dropout = new PyFloat(c.lora_dropout as number);
  if (!Number.isInteger(s.loraAlpha)) c.lora_alpha = new PyFloat(s.loraAlpha);
  return pyJson(c);
}

/** Python float repr: shortest round-trip digits; exponent form below 1e-4 or from 1e16. */
function pyFloatRepr(x: number): string {
  if (!Number.isFinite(x)) return Number.isNaN(x) ? 'NaN' : x > 0 ? 'Infinity' : '-Infinity';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const [mant, expStr] = x.toExponential().split('e');
  const exp = Number(expStr);
  if (exp < -4 || exp >= 16) {
    const e = Math.abs(exp);
    return `${mant}e${exp < 0 ? '-' : '+'}${e < 10 ? '0' : ''}${e}`;
  }
  const s = String(x);
  return s.includes('.') || s.includes('e') ? s : `${s}.0`;
}

/** json.dumps(v, indent=2, sort_keys=True) (ensure_ascii: non-ASCII escaped as \uXXXX). */
function pyJson(v: unknown, indent = ''): string {
  const inner = `${indent}  `;
  if (v instanceof PyFloat) return pyFloatRepr(v.value);
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : pyFloatRepr(v);
  if (typeof v === 'string') return JSON.stringify(v).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  if (Array.isArray(v)) {
    if (v.length === 0) return '[]';
    return `[\n${v.map((x) => inner + pyJson(x, inner)).join(',\n')}\n${indent}]`;
  }
  const entries = Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  if (entries.length === 0) return '{}';
  return `{\n${entries.map(([k, x]) => `${inner}${pyJson(k)}: ${pyJson(x, inner)}`).join(',\n')}\n${indent}}`;
}

// ---------------------------------------------------------------------------------------------
// adapter_model.safetensors

/** The adapter's tensors (sorted by name, as safetensors' save_file lays them out), shapes checked. */
export function adapterTensors(arch: ExportArch, adapter: LoraAdapter): TensorToWrite[] {
  const { r } = adapter.settings;
  const targets = loraTargets(arch, adapter.settings);
  const want = new Set(targets.map((t) => t.path));
  for (const path of adapter.modules.keys()) {
    if (!want.has(path)) throw new PeftError(`adapter has weights for ${path}, which is not a target of its settings`);
  }
  const out: TensorToWrite[] = [];
  for (const { path, linear } of targets) {
    const m = adapter.modules.get(path);
    if (!m) throw new PeftError(`adapter has no weights for ${path}`);
    if (m.a.length !== r * linear.in) throw new PeftError(`${path}.lora_A: ${m.a.length} values, expected [${r}, ${linear.in}]`);
    if (m.b.length !== linear.out * r) throw new PeftError(`${path}.lora_B: ${m.b.length} values, expected [${linear.out}, ${r}]`);
    out.push({ name: peftKey(path, 'A'), dtype: 'F32', shape: [r, linear.in], data: () => f32ToBytesLE(m.a) });
    out.push({ name: peftKey(path, 'B'), dtype: 'F32', shape: [linear.out, r], data: () => f32ToBytesLE(m.b) });
  }
  out.sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
  return out;
}

/** adapter_model.safetensors as chunks. */
export function adapterSafetensors(arch: ExportArch, adapter: LoraAdapter): AsyncGenerator<Uint8Array> {
  return writeSafetensors(adapterTensors(arch, adapter), { format: 'pt' });
}

// ---------------------------------------------------------------------------------------------
// Model card

export interface AdapterCardSummary {
  /** Hub id or name of the base model. */
  baseModel: string;
  settings: LoraSettings;
  /** Dataset name(s) as people know them. */
  datasets?: readonly string[];
  /** Chat template id and whether it maps EOS (Unsloth). */
  template?: string;
  /** Training settings, by transformers' TrainingArguments names (learning_rate, num_train_epochs, …). */
  training?: Readonly<Record<string, string | number | boolean | null>>;
  steps?: number;
  tokens?: number;
  finalLoss?: number | null;
  finalEvalLoss?: number | null;
  /** Loss every few steps, for a small table. */
  losses?: readonly { step: number; loss: number }[];
  /** What a merged export merged into: the original 16-bit weights or dequantized NF4. */
  mergeSource?: '16-bit' | 'nf4' | null;
  /** e.g. "2026-09-01" */
  date?: string;
}

const fmt = (x: number): string => (Number.isInteger(x) ? String(x) : Math.abs(x) >= 1e-3 ? x.toFixed(4).replace(/0+$/, '').replace(/\.$/, '') : x.toExponential(2));

/** README.md for the adapter: PEFT-style front matter, the settings and the final losses. */
export function adapterModelCard(c: AdapterCardSummary): string {
  const s = c.settings;
  const yamlStr = (x: string): string => (/^[\w./-]+$/.test(x) ? x : JSON.stringify(x));
  const lines = [
    '---',
    `base_model: ${yamlStr(c.baseModel)}`,
    'library_name: peft',
    'pipeline_tag: text-generation',
    'tags:',
    `- base_model:adapter:${yamlStr(c.baseModel)}`,
    '- lora',
    '- transformers',
    '- webtune-studio',
  ];
  if (c.datasets?.length) lines.push('datasets:', ...c.datasets.map((d) => `- ${yamlStr(d)}`));
  lines.push('---', '', `# LoRA adapter for ${c.baseModel}`, '');
  lines.push(
    `Fine-tuned in the browser with WebTune Studio (QLoRA on WebGPU)${c.date ? ` on ${c.date}` : ''}.`,
    `Load it with PEFT: \`PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained("${c.baseModel}"), "<this folder>")\`.`,
    '',
    '## LoRA',
    '',
    '| setting | value |',
    '|---|---|',
    `| r | ${s.r} |`,
    `| lora_alpha | ${fmt(s.loraAlpha)} |`,
    `| use_rslora | ${s.useRslora ?? false} |`,
    `| scaling | ${fmt(loraScaling(s))} |`,
    `| lora_dropout | ${fmt(s.loraDropout ?? 0)} |`,
    `| target_modules | ${s.targetModules.join(', ')} |`,
  );
  if (c.template) lines.push(`| chat template | ${c.template} |`);
  if (c.training && Object.keys(c.training).length > 0) {
    lines.push('', '## Training', '', '| setting | value |', '|---|---|');
    for (const [k, v] of Object.entries(c.training)) lines.push(`| ${k} | ${typeof v === 'number' ? fmt(v) : String(v)} |`);
  }
  const results: string[] = [];
  if (c.steps !== undefined) results.push(`| steps | ${c.steps} |`);
  if (c.tokens !== undefined) results.push(`| tokens | ${c.tokens} |`);
  if (c.finalLoss !== undefined && c.finalLoss !== null) results.push(`| final training loss | ${fmt(c.finalLoss)} |`);
  if (c.finalEvalLoss !== undefined && c.finalEvalLoss !== null) results.push(`| final eval loss | ${fmt(c.finalEvalLoss)} |`);
  if (results.length > 0) lines.push('', '## Results', '', '| | |', '|---|---|', ...results);
  if (c.losses?.length) {
    lines.push('', '| step | loss |', '|---|---|', ...c.losses.map((l) => `| ${l.step} | ${fmt(l.loss)} |`));
  }
  if (c.mergeSource) {
    lines.push(
      '',
      '## Merged exports',
      '',
      c.mergeSource === 'nf4'
        ? 'Merged weights were made from the dequantized NF4 (bitsandbytes 4-bit) base weights, so they carry its quantization error.'
        : 'Merged weights were made from the original 16-bit base weights.',
    );
  }
  lines.push('', '### Framework versions', '', `- PEFT ${PEFT_VERSION} (file format)`, '');
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------
// Files and zip

/** adapter_config.json, adapter_model.safetensors and README.md. */
export function peftAdapterFiles(arch: ExportArch, adapter: LoraAdapter, card?: AdapterCardSummary): ExportFile[] {
  const tensors = adapterTensors(arch, adapter); // validates now, not mid-download
  const files: ExportFile[] = [
    textFile(ADAPTER_CONFIG_FILE, adapterConfigJson(adapter.settings)),
    {
      name: ADAPTER_WEIGHTS_FILE,
      size: safetensorsFileSize(tensors, { format: 'pt' }),
      chunks: () => writeSafetensors(tensors, { format: 'pt' }),
    },
  ];
  if (card) files.push(textFile('README.md', adapterModelCard(card)));
  return files;
}

/** The adapter files as one .zip (streamed). */
export function peftAdapterZip(arch: ExportArch, adapter: LoraAdapter, card?: AdapterCardSummary, mtime?: Date): AsyncGenerator<Uint8Array> {
  return zipStream(peftAdapterFiles(arch, adapter, card), { mtime });
}


// ---------------------------------------------------------------------------------------------
// Reading

export interface PeftAdapterInput {
  /** adapter_config.json: text or parsed. */
  config: string | Record<string, unknown>;
  /** adapter_model.safetensors: bytes, a byte source, or an opened reader. */
  weights: Uint8Array | ByteSource | TensorReader;
}

export interface ReadPeftResult {
  adapter: LoraAdapter;
  warnings: string[];
}

function isReader(w: PeftAdapterInput['weights']): w is TensorReader {
  return typeof (w as TensorReader).readF32 === 'function';
}

/**
 * Loads a PEFT LoRA adapter and checks it against the model: LORA type, plain LoRA options (no
 * DoRA, rank/alpha patterns, extra saved modules), every key a target linear of the model, shapes
 * [r, in] / [out, r], nothing missing. Tensors in F32/F16/BF16 are returned as f32.
 */
export async function readPeftAdapter(input: PeftAdapterInput, arch: ExportArch): Promise<ReadPeftResult> {
  let cfg: Record<string, unknown>;
  try {
    cfg = typeof input.config === 'string' ? (JSON.parse(input.config) as Record<string, unknown>) : input.config;
  } catch (e) {
    throw new PeftError(`${ADAPTER_CONFIG_FILE} is not JSON: ${(e as Error).message}`);
  }
  const warnings: string[] = [];
  if (cfg.peft_type !== 'LORA') throw new PeftError(`${ADAPTER_CONFIG_FILE}: peft_type is ${JSON.stringify(cfg.peft_type)}, only LORA adapters are supported`);
  if (cfg.use_dora === true) throw new PeftError(`${ADAPTER_CONFIG_FILE}: DoRA adapters (use_dora) are not supported`);
  for (const field of ['rank_pattern', 'alpha_pattern']) {
    const v = cfg[field];
    if (v && typeof v === 'object' && Object.keys(v).length > 0) throw new PeftError(`${ADAPTER_CONFIG_FILE}: ${field} is not supported (per-module ranks)`);
  }
  if (cfg.modules_to_save != null && (!Array.isArray(cfg.modules_to_save) || cfg.modules_to_save.length > 0)) {
    throw new PeftError(`${ADAPTER_CONFIG_FILE}: modules_to_save (fully trained extra modules) is not supported`);
  }
  if (cfg.bias !== undefined && cfg.bias !== 'none') throw new PeftError(`${ADAPTER_CONFIG_FILE}: bias "${String(cfg.bias)}" is not supported (only "none")`);
  if (cfg.fan_in_fan_out === true) throw new PeftError(`${ADAPTER_CONFIG_FILE}: fan_in_fan_out adapters are not supported`);
  const r = cfg.r ?? 8;
  const alpha = cfg.lora_alpha ?? 8;
  if (typeof r !== 'number' || !Number.isInteger(r) || r <= 0) throw new PeftError(`${ADAPTER_CONFIG_FILE}: r must be a positive integer`);
  if (typeof alpha !== 'number' || !(alpha > 0)) throw new PeftError(`${ADAPTER_CONFIG_FILE}: lora_alpha must be a positive number`);
  const linearNames = arch.linears.map((l) => l.name);
  let targets: string[];
  const tm = cfg.target_modules;
  if (tm === 'all-linear') {
    targets = [...linearNames]; // PEFT's shorthand: every linear but the output layer
  } else if (Array.isArray(tm) && tm.every((t) => typeof t === 'string')) {
    targets = linearNames.filter((n) => (tm as string[]).some((t) => t === n || n.endsWith(`.${t}`)));
    const unknown = (tm as string[]).filter((t) => !linearNames.includes(t));
    if (unknown.length) warnings.push(`target_modules ${unknown.join(', ')} match no linear of this model`);
  } else if (typeof tm === 'string') {
    // A regex matched (in full) against module names, as PEFT does.
    const re = new RegExp(`^(?:${tm})$`);
    targets = linearNames.filter((n) => Array.from({ length: arch.layers }, (_, i) => re.test(linearPath(i, arch.linears.find((l) => l.name === n)!))).some(Boolean));
  } else {
    throw new PeftError(`${ADAPTER_CONFIG_FILE}: target_modules is missing`);
  }
  if (targets.length === 0) throw new PeftError(`${ADAPTER_CONFIG_FILE}: target_modules select no linear of this model`);
  const ltt = cfg.layers_to_transform;
  const layersToTransform = Array.isArray(ltt) ? (ltt as number[]) : typeof ltt === 'number' ? [ltt] : null;
  const settings: LoraSettings = {
    r,
    loraAlpha: alpha,
    targetModules: targets,
    loraDropout: typeof cfg.lora_dropout === 'number' ? cfg.lora_dropout : 0,
    useRslora: cfg.use_rslora === true,
    baseModelNameOrPath: typeof cfg.base_model_name_or_path === 'string' ? cfg.base_model_name_or_path : null,
    revision: typeof cfg.revision === 'string' ? cfg.revision : null,
    layersToTransform,
  };

  const w = input.weights;
  const reader = isReader(w) ? w : await openSafetensors(w instanceof Uint8Array ? bytesSource(w, ADAPTER_WEIGHTS_FILE) : w);
  const byKey = new Map(reader.tensors.map((t) => [normalizeKey(t.name), t]));
  const expected = loraTargets(arch, settings);
  const expectedKeys = new Set<string>();
  const modules = new Map<string, LoraModule>();
  for (const { path, linear } of expected) {
    const ka = peftKey(path, 'A');
    const kb = peftKey(path, 'B');
    expectedKeys.add(ka);
    expectedKeys.add(kb);
    const ta = byKey.get(ka);
    const tb = byKey.get(kb);
    if (!ta || !tb) throw new PeftError(`${ADAPTER_WEIGHTS_FILE}: missing ${!ta ? ka : kb}`);
    if (ta.shape.length !== 2 || ta.shape[0] !== r || ta.shape[1] !== linear.in) {
      throw new PeftError(`${ADAPTER_WEIGHTS_FILE}: ${ka} has shape [${ta.shape.join(', ')}], expected [${r}, ${linear.in}]`);
    }
    if (tb.shape.length !== 2 || tb.shape[0] !== linear.out || tb.shape[1] !== r) {
      throw new PeftError(`${ADAPTER_WEIGHTS_FILE}: ${kb} has shape [${tb.shape.join(', ')}], expected [${linear.out}, ${r}]`);
    }
    modules.set(path, { a: await reader.readF32(ta.name), b: await reader.readF32(tb.name) });
  }
  const extra = [...byKey.keys()].filter((k) => !expectedKeys.has(k));
  if (extra.length > 0) {
    throw new PeftError(`${ADAPTER_WEIGHTS_FILE}: ${extra.length} tensors match no LoRA target of this model, e.g. ${extra[0]}`);
  }
  return { adapter: { settings, modules }, warnings };
}

/** Accept the in-memory form `lora_A.default.weight` as well as the saved `lora_A.weight`. */
function normalizeKey(k: string): string {
  return k.replace(/\.lora_([AB])\.default\.weight$/, '.lora_$1.weight');
}
