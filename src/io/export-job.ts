// One export, from the model and the adapter to files in a sink: the job that the trainer worker
// (Export tab) and the headless runner both run.
//
//   planExport(model, adapter, request)  -> the files, their total size, notes; every check that can
//                                          fail (no adapter, an architecture or tokenizer llama.cpp
//                                          cannot take, a bad request) fails here, before any work
//   runExport(plan, sink, {signal, onProgress}) -> streams the files to the sink (sink.ts)
//
// Kinds: 'adapter' (PEFT files as one .zip, or a folder), 'merged' (bf16/f16 safetensors shards +
// config + tokenizer + README), 'gguf' (one GGUF of a type, plus an Ollama Modelfile: a folder).
// Base weights: whatever `model.base` reads — the original checkpoint weights when the model was
// loaded from 16/32-bit, the dequantized NF4 for a bnb-4bit checkpoint (src/engine/export-source.ts);
// the merged model's README and the result's notes say which.
//
// No adapter: an error for every kind, unless the request says `withoutAdapter` (merged / gguf),
// which writes the base model unchanged and says so in the notes — never silently.

import { adapterModelCard, loraTargets, peftAdapterFiles, peftKey, type AdapterCardSummary, type LoraAdapter, type LoraSettings } from './peft.ts';
import { safetensorsFileSize } from './safetensors.ts';
import { mergedModelFiles, type MergedDtype } from './export-merged.ts';
import { mergedWeights, wholeTensorRows } from './merge.ts';
import { ggufFileSize, kv, writeGguf } from './gguf.ts';
import { ggufArchName, ggufModel, type GgufQuantizer } from './gguf-model.ts';
import { ggufTokenizer } from './gguf-tokenizer.ts';
import { ollamaModelfile, type OllamaTemplateId } from './modelfile.ts';
import { parseGgufPreset, type GgufPreset } from './quants/presets.ts';
import { GGMLType, quantize } from './quants/index.ts';
import { textFile, zipStream, type ExportFile } from './export-files.ts';
import { pooledMergedWeights, prefetchTensors, type QuantPool } from './quant-pool.ts';
import { ExportError } from './export-job-errors.ts';
import { writeExport, type ExportSink, type WriteExportOptions, type WrittenFile } from './sink.ts';
import { linearPath, type ExportArch, type WeightSource } from './export-arch.ts';

export { ExportError } from './export-job-errors.ts';
export type { ExportFailure } from './export-job-errors.ts';
export type { ExportProgress, ExportPhase } from './export-job-progress.ts';

export type ExportKind = 'adapter' | 'merged' | 'gguf';

/** The GGUF types offered, as people write them (llama-quantize's names, lower case). */
export const GGUF_EXPORT_TYPES = ['f16', 'bf16', 'q8_0', 'q6_k', 'q5_k_m', 'q4_k_m', 'q3_k_m', 'q2_k', 'q4_0'] as const;
export type GgufExportType = (typeof GGUF_EXPORT_TYPES)[number];
/** The usual trade of size against quality (Unsloth's and Ollama's default too). */
export const RECOMMENDED_GGUF_TYPE: GgufExportType = 'q4_k_m';

export interface ExportRequest {
  kind: ExportKind;
  /** adapter: one .zip (default) or its files in a folder. */
  adapterLayout?: 'zip' | 'folder';
  /** merged: 'bfloat16' (default) or 'float16'. */
  dtype?: MergedDtype;
  /** gguf: default q4_k_m. */
  ggufType?: GgufExportType;
  /** gguf: an Ollama Modelfile next to the GGUF (default true, when the template has an Ollama form). */
  modelfile?: boolean;
  /** merged / gguf: write the base model unchanged, with no adapter merged (default false). */
  withoutAdapter?: boolean;
  /** Base of file and folder names (default: the model id's last part). */
  name?: string;
  /** What the model card says about the run. */
  card?: ExportCardFacts;
}

/** The training run as the adapter's README tells it. */
export type ExportCardFacts = Omit<AdapterCardSummary, 'baseModel' | 'settings' | 'mergeSource'>;

/** The training chat template, resolved (src/data/templates.ts EffectiveTemplate, structurally). */
export interface ExportTemplate {
  id: string;
  exportSource: string;
  eosRename: { from: string; to: string } | null;
}

/** Everything an export needs to know about the base model. */
export interface ExportModel {
  /** Hub id or name: model cards, general.name, default file names. */
  id: string;
  arch: ExportArch;
  /** config.json, parsed. */
  config: Record<string, unknown>;
  /** config.json as its text, when at hand: the merged model's config.json keeps its numbers as written (8.0 stays 8.0). */
  configText?: string;
  generationConfig?: Record<string, unknown> | null;
  /** tokenizer.json, parsed; null when the repo has none (merged and GGUF exports need it). */
  tokenizerJson: unknown;
  tokenizerConfig: Record<string, unknown>;
  /** The model's tensors (transformers names, shapes), in checkpoint order, no quant-state tensors. */
  tensors: readonly { name: string; shape: readonly number[] }[];
  /** f32 base weights by transformers name. */
  base: WeightSource;
  /** Where `base` comes from: the original checkpoint weights, or the dequantized NF4 of a bnb-4bit one. */
  baseOrigin: '16-bit' | 'nf4';
  /** The template the adapter was trained with; null: the tokenizer's own. */
  template?: ExportTemplate | null;
}

export interface ExportPlan {
  kind: ExportKind;
  /** One file (the .zip, a lone GGUF) or a folder of files. */
  layout: 'file' | 'folder';
  /** The file name, or the folder's. */
  name: string;
  files: ExportFile[];
  /** Bytes to write; exact except for a zip (its text members are deflated: an upper bound). */
  totalBytes: number;
  /** Facts for people: what was merged into what, what was left out and why. */
  notes: string[];
}

export interface PlanDeps {
  /** Quantize and merge in these workers (default: on this thread). */
  pool?: QuantPool;
  /** GGUF: quantize with this instead (the GPU quantizer of src/engine/kquant-gpu.ts, which hands
   * what it does not do to the pool); merging stays with the pool. */
  quantizer?: GgufQuantizer;
  /** Date for the model card and zip entries (default: now). */
  now?: Date;
  /** GGUF: tensors larger than this are read and quantized in row chunks (ggufModel's default 2^24). */
  chunkElements?: number;
}

export interface ExportResult {
  kind: ExportKind;
  layout: 'file' | 'folder';
  name: string;
  files: WrittenFile[];
  bytes: number;
  seconds: number;
  /** The sink's description of where the files went. */
  where: string;
  notes: string[];
}

export function isGgufExportType(s: unknown): s is GgufExportType {
  return typeof s === 'string' && (GGUF_EXPORT_TYPES as readonly string[]).includes(s);
}

/** "meta-llama/Llama-3.2-1B" -> "Llama-3.2-1B"; anything odd for a file name becomes "-". */
export function exportBaseName(id: string): string {
  const last = id.split('/').filter(Boolean).pop() ?? 'model';
  return last.replace(/[^\w.-]+/g, '-').replace(/^[.-]+/, '') || 'model';
}

const ORIGIN_NOTE = {
  '16-bit': 'Merged into the original base weights, as stored in the checkpoint.',
  nf4: 'Merged into the dequantized NF4 base weights (the checkpoint is bitsandbytes 4-bit), so they carry its quantization error.',
} as const;

const OLLAMA_TEMPLATE: Partial<Record<string, OllamaTemplateId>> = { chatml: 'chatml', llama3: 'llama3' };

function missingAdapter(kind: ExportKind): ExportError {
  const next =
    kind === 'adapter'
      ? 'Train one in the Train tab first.'
      : 'Train one in the Train tab first, or ask for the base model without an adapter.';
  return new ExportError('no-adapter', `There is no trained adapter to export. ${next}`);
}

/** The files of one export, checked. Throws an ExportError before any byte is produced. */
export function planExport(model: ExportModel, adapter: LoraAdapter | null, request: ExportRequest, deps: PlanDeps = {}): ExportPlan {
  const name = request.name ? exportBaseName(request.name) : exportBaseName(model.id);
  const withoutAdapter = request.withoutAdapter === true;
  if (withoutAdapter && request.kind === 'adapter') throw new ExportError('bad-request', 'An adapter export needs the adapter: "without adapter" applies to merged and GGUF exports only.');
  if (!withoutAdapter && !adapter) throw missingAdapter(request.kind);
  const merged = withoutAdapter ? null : adapter;
  try {
    switch (request.kind) {
      case 'adapter':
        return planAdapter(model, adapter!, request, name, deps);
      case 'merged':
        return planMerged(model, merged, request, name, deps);
      case 'gguf':
        return planGguf(model, merged, request, name, deps);
      default:
        throw new ExportError('bad-request', `Unknown export kind ${JSON.stringify((request as { kind: unknown }).kind)}: adapter, merged or gguf.`);
    }
  } catch (e) {
    if (e instanceof ExportError) throw e;
    throw new ExportError('unsupported', `This model cannot be exported as ${request.kind === 'gguf' ? 'GGUF' : request.kind}: ${(e as Error).message}.`, { cause: e });
  }
}

function planAdapter(model: ExportModel, adapter: LoraAdapter, request: ExportRequest, name: string, deps: PlanDeps): ExportPlan {
  const layout = request.adapterLayout ?? 'zip';
  if (layout !== 'zip' && layout !== 'folder') throw new ExportError('bad-request', `Adapter layout ${JSON.stringify(layout)}: zip or folder.`);
  const settings = { ...adapter.settings, baseModelNameOrPath: adapter.settings.baseModelNameOrPath ?? model.id };
  const files = peftAdapterFiles(model.arch, { ...adapter, settings }, { ...cardSummary(model, request, deps), settings });
  const total = files.reduce((s, f) => s + (f.size ?? 0), 0);
  if (layout === 'folder') return { kind: 'adapter', layout: 'folder', name: `${name}-lora`, files, totalBytes: total, notes: [] };
  const zipName = `${name}-lora.zip`;
  const zip: ExportFile = { name: zipName, chunks: () => zipStream(files, { mtime: deps.now }) };
  // Local headers, central directory and end record: about 100 bytes per member.
  return { kind: 'adapter', layout: 'file', name: zipName, files: [zip], totalBytes: total + 128 * (files.length + 1), notes: [] };
}

function cardSummary(model: ExportModel, request: ExportRequest, deps: PlanDeps): Omit<AdapterCardSummary, 'settings'> {
  return { date: (deps.now ?? new Date()).toISOString().slice(0, 10), template: model.template?.id, ...request.card, baseModel: model.id };
}

function weightsFor(model: ExportModel, adapter: LoraAdapter | null, deps: PlanDeps): WeightSource {
  const w = !adapter ? model.base : deps.pool ? pooledMergedWeights(model.arch, model.base, adapter, deps.pool) : mergedWeights(model.arch, model.base, adapter);
  if (model.baseOrigin !== 'nf4') return w;
  // An NF4 linear is dequantized whole whatever is asked: its row reads come from one whole read,
  // so that the next tensor's first rows (prefetched) do not evict the current one's.
  const cols = new Map<string, number>();
  for (let i = 0; i < model.arch.layers; i++) for (const l of model.arch.linears) cols.set(`${linearPath(i, l)}.weight`, l.in);
  return wholeTensorRows(w, cols);
}

function needTokenizer(model: ExportModel, what: string): void {
  if (model.tokenizerJson === null || model.tokenizerJson === undefined) {
    throw new ExportError('unsupported', `${model.id} has no tokenizer.json, and ${what} needs one. Export the adapter instead.`);
  }
}

function mergeNote(model: ExportModel, adapter: LoraAdapter | null): string {
  return adapter ? ORIGIN_NOTE[model.baseOrigin] : 'No adapter was merged: this is the base model unchanged.';
}

function planMerged(model: ExportModel, adapter: LoraAdapter | null, request: ExportRequest, name: string, deps: PlanDeps): ExportPlan {
  needTokenizer(model, 'a merged model');
  const dtype = request.dtype ?? 'bfloat16';
  if (dtype !== 'bfloat16' && dtype !== 'float16') throw new ExportError('bad-request', `Merged dtype ${JSON.stringify(dtype)}: bfloat16 or float16.`);
  const short = dtype === 'bfloat16' ? 'bf16' : 'f16';
  const readme = adapter ? [textFile('README.md', mergedCard(model, adapter, request, deps, dtype))] : [];
  const files = mergedModelFiles({
    tensors: model.tensors,
    weights: weightsFor(model, adapter, deps),
    dtype,
    config: model.config,
    configText: model.configText,
    generationConfig: model.generationConfig,
    tokenizerJson: model.tokenizerJson,
    tokenizerConfig: model.tokenizerConfig,
    chatTemplate: model.template?.exportSource,
    eosRename: model.template?.eosRename,
    extraFiles: readme,
    // With workers: a tensor merged in shared memory is converted there too (no copy); anything
    // else here, where the copy out to the workers would cost about as much. The next big tensor
    // is read meanwhile.
    convert: (d, w) => {
      const type = d === 'bfloat16' ? GGMLType.BF16 : GGMLType.F16;
      return deps.pool?.holds(w) ? deps.pool.quantize(type, w) : quantize(type, w);
    },
    readAhead: deps.pool !== undefined,
  });
  const total = files.reduce((s, f) => s + (f.size ?? 0), 0);
  return { kind: 'merged', layout: 'folder', name: `${name}-merged-${short}`, files, totalBytes: total, notes: [mergeNote(model, adapter)] };
}

/** The dtype config.json declares for the checkpoint (transformers 5 `dtype`, 4.x `torch_dtype`), or null. */
function declaredDtype(config: Record<string, unknown>): string | null {
  const d = config.dtype ?? config.torch_dtype;
  return typeof d === 'string' && /^[a-z][a-z0-9_]*$/.test(d) ? d : null;
}

/** What the merged weights were made from, with the base's own dtype (float32, bfloat16, …): the
 * adapter card's sentence would call every non-NF4 base 16-bit. */
function mergedOrigin(model: ExportModel): string {
  const dtype = declaredDtype(model.config);
  if (model.baseOrigin === 'nf4' || dtype === null) return ORIGIN_NOTE[model.baseOrigin];
  return `Merged into the original base weights (${dtype}), as stored in the checkpoint.`;
}

/** README.md of a merged model: transformers front matter, then the adapter card's sections. */
function mergedCard(model: ExportModel, adapter: LoraAdapter, request: ExportRequest, deps: PlanDeps, dtype: MergedDtype): string {
  // No mergeSource: the card's first paragraph says what was merged into (mergedOrigin).
  const full = adapterModelCard({ ...cardSummary(model, request, deps), settings: adapter.settings });
  const body = full.slice(full.indexOf('\n## LoRA'), full.indexOf('\n### Framework versions'));
  return [
    '---',
    `base_model: ${JSON.stringify(model.id)}`,
    'library_name: transformers',
    'pipeline_tag: text-generation',
    'tags:',
    '- merged-lora',
    '- webtune-studio',
    '---',
    '',
    `# ${model.id} with a LoRA adapter merged (${dtype})`,
    '',
    `Fine-tuned in the browser with WebTune Studio; the adapter is merged into the weights. ${mergedOrigin(model)}`,
    body,
    '',
  ].join('\n');
}

const FALLBACK_PRE: Record<string, string> = { llama: 'llama-bpe', qwen2: 'qwen2', qwen3: 'qwen2' };

function planGguf(model: ExportModel, adapter: LoraAdapter | null, request: ExportRequest, name: string, deps: PlanDeps): ExportPlan {
  const type = request.ggufType ?? RECOMMENDED_GGUF_TYPE;
  if (!isGgufExportType(type)) throw new ExportError('bad-request', `GGUF type ${JSON.stringify(type)} is not offered: one of ${GGUF_EXPORT_TYPES.join(', ')}.`);
  let arch: string;
  try {
    arch = ggufArchName(model.arch.family);
  } catch {
    throw new ExportError(
      'unsupported',
      `llama.cpp does not know the "${model.arch.family}" architecture, so there is no GGUF for it. Export the adapter or the merged 16-bit model instead.`,
    );
  }
  needTokenizer(model, 'a GGUF');
  const preset: GgufPreset = parseGgufPreset(type);
  const template = model.template ?? null;
  const tok = ggufTokenizer({
    tokenizerJson: model.tokenizerJson,
    tokenizerConfig: model.tokenizerConfig,
    modelConfig: model.config,
    vocabSize: model.arch.vocabSize,
    chatTemplate: template?.exportSource,
    eosRename: template?.eosRename,
    fallbackPre: FALLBACK_PRE[arch],
  });
  const m = ggufModel({
    arch: model.arch,
    preset,
    weights: weightsFor(model, adapter, deps),
    tokenizer: tok.kvs,
    name: adapter ? `${model.id} (LoRA merged)` : model.id,
    extra: [kv.str('general.description', `${mergeNote(model, adapter)} Exported by WebTune Studio.`)],
    quantizer: deps.quantizer ?? (deps.pool ? (t, w) => deps.pool!.quantize(t, w) : undefined),
    chunkElements: deps.chunkElements,
  });
  const ggufName = `${name}-${preset}.gguf`;
  const tensors = prefetchTensors(m.tensors);
  const gguf: ExportFile = { name: ggufName, size: ggufFileSize(m.kvs, m.tensors), chunks: () => writeGguf(m.kvs, tensors) };
  const notes = [mergeNote(model, adapter), ...tok.warnings.map((w) => `Tokenizer: ${w}.`)];
  const files = [gguf];
  const ollama = template ? OLLAMA_TEMPLATE[template.id] : undefined;
  if (request.modelfile !== false) {
    if (ollama) {
      const eos = tok.eosId !== null ? tok.tokens[tok.eosId] : undefined;
      files.push(textFile('Modelfile', ollamaModelfile({ from: `./${ggufName}`, template: ollama, extraStops: eos ? [eos] : [] })));
    } else {
      notes.push(
        `No Ollama Modelfile: Ollama has no template form of the "${template?.id ?? 'tokenizer'}" chat template here. The GGUF carries the template; \`ollama create\` with a Modelfile of just "FROM ./${ggufName}" reads it from there.`,
      );
    }
  }
  const total = files.reduce((s, f) => s + (f.size ?? 0), 0);
  return files.length === 1
    ? { kind: 'gguf', layout: 'file', name: ggufName, files, totalBytes: total, notes }
    : { kind: 'gguf', layout: 'folder', name: `${name}-${preset}`, files, totalBytes: total, notes };
}

/** Writes a planned export to a sink (see writeExport for cancel, progress and clean-up). */
export async function runExport(plan: ExportPlan, sink: ExportSink, opts: Omit<WriteExportOptions, 'totalBytes'> = {}): Promise<ExportResult> {
  const r = await writeExport(plan.files, sink, { ...opts, totalBytes: plan.totalBytes });
  return { kind: plan.kind, layout: plan.layout, name: plan.name, files: r.files, bytes: r.bytes, seconds: r.seconds, where: sink.where, notes: plan.notes };
}

/** What each export of this model would write, in bytes, for the pickers: planned, never run. */
export interface ExportSizes {
  /** null without adapter settings. */
  adapter: number | null;
  /** Without the README (a few KB). */
  merged: Record<MergedDtype, number>;
  /** Each type with its Modelfile; empty when GGUF is not possible (ggufProblem says why). */
  gguf: Partial<Record<GgufExportType, number>>;
  ggufProblem: string | null;
}

export function exportSizes(model: ExportModel, adapterSettings: LoraSettings | null): ExportSizes {
  const size = (request: ExportRequest): number => planExport(model, null, { ...request, withoutAdapter: true }).totalBytes;
  let adapter: number | null = null;
  if (adapterSettings) {
    const specs = loraTargets(model.arch, adapterSettings).flatMap(({ path, linear }) => [
      { name: peftKey(path, 'A'), dtype: 'F32' as const, shape: [adapterSettings.r, linear.in] },
      { name: peftKey(path, 'B'), dtype: 'F32' as const, shape: [linear.out, adapterSettings.r] },
    ]);
    adapter = safetensorsFileSize(specs, { format: 'pt' }) + 4096; // + config and README, zipped
  }
  const gguf: ExportSizes['gguf'] = {};
  let ggufProblem: string | null = null;
  try {
    for (const t of GGUF_EXPORT_TYPES) gguf[t] = size({ kind: 'gguf', ggufType: t });
  } catch (e) {
    ggufProblem = (e as Error).message;
  }
  return { adapter, merged: { bfloat16: size({ kind: 'merged', dtype: 'bfloat16' }), float16: size({ kind: 'merged', dtype: 'float16' }) }, gguf, ggufProblem };
}
