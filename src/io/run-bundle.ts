// A run bundle: everything an existing distributed trainer needs to train the studio's LoRA run
// again, longer or bigger, on GPUs, with no code of ours at run time:
//
//   train.py, studio_data.py     transformers + PEFT + accelerate; the studio's tokenization
//   tokenization.json            BOS/EOS/pad, end of turn, masking, length, packing
//   chat_template.jinja          the template text the studio rendered for training
//   data/train.jsonl (+ validation.jsonl), data/rows.json   the records in training order, rows
//   tokenizer/                   the tokenizer's files (when given)
//   adapter/                     the studio's PEFT adapter (when given) and the step it stands at
//   accelerate_config_{ddp,fsdp}.yaml, axolotl.yaml, README.md
//
// planRunBundle() checks everything and returns the files (one .zip, or a folder of paths with
// sub-folders); nothing is produced before it returns.

import type { EffectiveTemplate } from '../data/templates.ts';
import type { TokenizerInfo } from '../data/tokenizer-info.ts';
import type { TrainSettings } from '../engine/train/loop.ts';
import { bytesFile, textFile, zipStream, type ExportFile } from './export-files.ts';
import { axolotlConfig, ddpConfig, fsdpConfig, type BundleRunFacts, AXOLOTL_FILE, DDP_CONFIG_FILE, FSDP_CONFIG_FILE } from './run-bundle-configs.ts';
import type { BundleData, BundleSplit } from './run-bundle-data.ts';
import { STUDIO_DATA_PY, trainPy, type TrainPySettings } from './run-bundle-python.ts';
import { bundleReadme } from './run-bundle-readme.ts';

export class RunBundleError extends Error {
  override name = 'RunBundleError';
}

export interface RunBundleInput {
  /** Hub id of the base model: train.py's default --model. */
  modelId: string;
  /** config.json's model_type (llama, qwen2, ...): FSDP's unit per decoder layer. */
  modelType?: string | null;
  /** How the studio held the base: 'nf4' (QLoRA, the loader's way) or 'none' (dense 16/32-bit). */
  baseQuantization: 'nf4' | 'none';
  settings: TrainSettings;
  /** The prepared dataset's options (PreparedManifest.options). */
  prepare: { maxSeqLength: number; trainOnResponsesOnly: boolean; overflow: 'truncate' | 'drop'; packing: boolean; seed: number };
  /** The template the dataset was prepared with, resolved against the tokenizer. */
  template: Pick<EffectiveTemplate, 'id' | 'source' | 'exportSource' | 'endOfTurn' | 'addsBos' | 'bosToken' | 'eosToken' | 'eosRename'>;
  tokenizer: {
    info: Pick<TokenizerInfo, 'bosId' | 'eosId' | 'padId' | 'addsBosOnEncode'>;
    /** The pad token's text (Axolotl's special_tokens.pad_token), when known. */
    padToken?: string | null;
    /** tokenizer.json and tokenizer_config.json (parsed or as bytes): written to tokenizer/. */
    files?: { tokenizerJson: unknown; tokenizerConfig: unknown; chatTemplate?: string | null } | null;
  };
  /** The records of each row (bundleData in run-bundle-data.ts). */
  data: BundleData;
  datasetName: string;
  /** The studio's adapter (peftAdapterFiles) and the optimizer steps behind it. */
  adapter?: { files: readonly ExportFile[]; step: number } | null;
  /** Losses of the studio's run, for the README. */
  losses?: readonly { step: number; loss: number }[];
  /** train.py's default dtype: float32 computes as the studio does; bfloat16 is the usual on GPUs. */
  dtype?: 'float32' | 'bfloat16';
  /** Base of the bundle's name (default: the model id's last part). */
  name?: string;
  /** Date for the README and zip entries (default: now). */
  now?: Date;
}

export interface RunBundlePlan {
  /** One .zip, or a folder whose file names hold '/' for its sub-folders. */
  layout: 'file' | 'folder';
  name: string;
  files: ExportFile[];
  /** Bytes to write: exact for a folder, an upper bound for a zip. */
  totalBytes: number;
  notes: string[];
}

const enc = new TextEncoder();

function jsonFile(name: string, value: unknown): ExportFile {
  return textFile(name, `${JSON.stringify(value, null, 2)}\n`);
}

function asBytes(v: unknown): Uint8Array {
  return v instanceof Uint8Array ? v : enc.encode(typeof v === 'string' ? v : JSON.stringify(v, null, 2));
}

async function sha256Hex(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return [...d].map((x) => x.toString(16).padStart(2, '0')).join('');
}

function jsonl(split: BundleSplit): Uint8Array<ArrayBuffer> {
  return enc.encode(split.lines.map((l) => `${l}\n`).join(''));
}

/** The base of the bundle's name: "meta-llama/Llama-3.2-1B" -> "Llama-3.2-1B". */
function baseName(id: string): string {
  const last = id.split('/').filter(Boolean).pop() ?? 'model';
  return last.replace(/[^\w.-]+/g, '-').replace(/^[.-]+/, '') || 'model';
}

function totalSteps(s: TrainSettings, rows: number): number {
  return s.maxSteps ?? Math.ceil(rows / (s.batchSize * s.gradAccum)) * (s.epochs ?? 1);
}

function check(input: RunBundleInput): void {
  const s = input.settings;
  const bad = (m: string): never => {
    throw new RunBundleError(m);
  };
  if (!input.modelId) bad('The bundle needs the base model\'s id.');
  if (!(Number.isInteger(s.loraR) && s.loraR > 0)) bad(`LoRA rank ${s.loraR} is not a positive whole number.`);
  if (s.targets.length === 0) bad('The LoRA settings have no target modules.');
  if (!(Number.isInteger(s.batchSize) && s.batchSize > 0 && Number.isInteger(s.gradAccum) && s.gradAccum > 0)) bad('Batch size and gradient accumulation must be positive whole numbers.');
  if (input.data.train.seqLength !== input.prepare.maxSeqLength) {
    bad(`The rows have ${input.data.train.seqLength} tokens but the dataset was prepared for ${input.prepare.maxSeqLength}.`);
  }
  if (input.tokenizer.info.padId === undefined) bad('The tokenizer facts have no pad id.');
  if (input.adapter && !(Number.isInteger(input.adapter.step) && input.adapter.step >= 0)) bad(`The adapter's step ${input.adapter.step} is not a whole number.`);
}

function dataKind(split: BundleSplit): 'chat' | 'text' {
  return split.lines[0]?.startsWith('{"text"') ? 'text' : 'chat';
}

/** The studio run as the configs and the README describe it. */
function runFacts(input: RunBundleInput, hasTokenizer: boolean): BundleRunFacts {
  const s = input.settings;
  return {
    modelId: input.modelId,
    modelType: input.modelType ?? null,
    quantization: input.baseQuantization,
    loraR: s.loraR,
    loraAlpha: s.loraAlpha,
    useRslora: s.rslora,
    targetModules: [...s.targets],
    loraDropout: s.loraDropout ?? 0,
    learningRate: s.learningRate,
    lrScheduler: s.schedule,
    warmupSteps: s.warmupSteps ?? (s.warmupRatio === undefined ? 0 : null),
    warmupRatio: s.warmupSteps === undefined ? (s.warmupRatio ?? null) : null,
    batchSize: s.batchSize,
    gradAccum: s.gradAccum,
    epochs: s.epochs ?? 1,
    maxSteps: s.maxSteps ?? null,
    optimizer: s.optimizer,
    weightDecay: s.weightDecay,
    maxGradNorm: s.maxGradNorm,
    seed: s.seed,
    evalEvery: s.evalEvery ?? 0,
    maxSeqLength: input.prepare.maxSeqLength,
    packing: input.prepare.packing,
    trainOnResponsesOnly: input.prepare.trainOnResponsesOnly,
    chatTemplate: input.template.source,
    endOfTurn: input.template.endOfTurn,
    dataKind: dataKind(input.data.train),
    hasValidation: input.data.validation !== null,
    hasAdapter: !!input.adapter,
    hasTokenizer,
    padToken: input.tokenizer.padToken ?? null,
  };
}

function trainPySettings(input: RunBundleInput, f: BundleRunFacts): TrainPySettings {
  return {
    ...f,
    model: f.modelId,
    dtype: input.dtype ?? (f.quantization === 'nf4' ? 'bfloat16' : 'float32'),
    min8bitSize: input.settings.min8bitSize ?? 4096,
    adapterStep: input.adapter ? input.adapter.step : null,
  };
}

/** tokenization.json: what studio_data.py needs besides the template text. */
function tokenizationJson(input: RunBundleInput): Record<string, unknown> {
  const t = input.template;
  const info = input.tokenizer.info;
  return {
    template_id: t.id,
    chat_template_file: 'chat_template.jinja',
    end_of_turn: t.endOfTurn,
    template_adds_bos: t.addsBos,
    bos_token: t.bosToken,
    eos_token: t.eosToken,
    bos_id: info.bosId,
    eos_id: info.eosId,
    pad_id: info.padId,
    adds_bos_on_encode: info.addsBosOnEncode,
    append_eos_to_text: true,
    train_on_responses_only: input.prepare.trainOnResponsesOnly,
    max_seq_length: input.prepare.maxSeqLength,
    overflow: input.prepare.overflow,
    packing: input.prepare.packing,
    eos_rename: t.eosRename,
    ...(t.exportSource !== t.source ? { export_chat_template: t.exportSource } : {}),
  };
}

async function rowsJson(data: BundleData, files: { train: Uint8Array<ArrayBuffer>; validation: Uint8Array<ArrayBuffer> | null }): Promise<Record<string, unknown>> {
  const split = async (s: BundleSplit, bytes: Uint8Array<ArrayBuffer>) => ({
    file_sha256: await sha256Hex(bytes),
    records: s.lines.length,
    rows: s.rows,
    tokens: s.tokens,
    trained_tokens: s.trainedTokens,
    docs_per_row: s.docsPerRow,
    rows_sha256: s.rowsSha256,
    first_rows: s.firstRows,
  });
  return {
    seq_length: data.train.seqLength,
    train: await split(data.train, files.train),
    ...(data.validation && files.validation ? { validation: await split(data.validation, files.validation) } : {}),
  };
}

/** Every file of the bundle, paths relative to its folder. */
export async function runBundleFiles(input: RunBundleInput): Promise<{ files: ExportFile[]; notes: string[] }> {
  check(input);
  const tokFiles = input.tokenizer.files ?? null;
  const facts = runFacts(input, tokFiles !== null);
  const trainBytes = jsonl(input.data.train);
  const validationBytes = input.data.validation ? jsonl(input.data.validation) : null;
  const steps = totalSteps(input.settings, input.data.train.rows);
  const notes: string[] = [];
  if (!Number.isInteger(input.settings.loraAlpha)) notes.push(`Axolotl takes an integer lora_alpha: axolotl.yaml says ${Math.round(input.settings.loraAlpha)} for ${input.settings.loraAlpha}.`);
  if (!tokFiles) notes.push('No tokenizer files were given: train.py uses the model\'s tokenizer, which must be the one the studio used.');
  if (input.adapter && input.adapter.step > steps) notes.push(`The adapter stands at step ${input.adapter.step}, past the run's ${steps} steps: --resume-adapter has nothing left to train unless --max-steps is raised.`);

  const files: ExportFile[] = [
    textFile('README.md', bundleReadme({
      ...facts,
      datasetName: input.datasetName,
      trainLines: input.data.train.lines.length,
      trainRows: input.data.train.rows,
      trainedTokens: input.data.train.trainedTokens,
      validationLines: input.data.validation?.lines.length ?? null,
      adapterStep: input.adapter?.step ?? null,
      totalSteps: steps,
      losses: input.losses ?? [],
      templateId: input.template.id,
      eosRename: input.template.eosRename,
      prependsBos: !input.template.addsBos && input.tokenizer.info.addsBosOnEncode && input.tokenizer.info.bosId !== null,
      bosToken: input.template.bosToken,
      date: input.now ? input.now.toISOString().slice(0, 10) : null,
    })),
    textFile('train.py', trainPy(trainPySettings(input, facts))),
    textFile('studio_data.py', STUDIO_DATA_PY),
    jsonFile('tokenization.json', tokenizationJson(input)),
    textFile('chat_template.jinja', input.template.source),
    bytesFile('data/train.jsonl', trainBytes),
    ...(validationBytes ? [bytesFile('data/validation.jsonl', validationBytes)] : []),
    jsonFile('data/rows.json', await rowsJson(input.data, { train: trainBytes, validation: validationBytes })),
    textFile(DDP_CONFIG_FILE, ddpConfig()),
    textFile(FSDP_CONFIG_FILE, fsdpConfig(facts)),
    textFile(AXOLOTL_FILE, axolotlConfig(facts)),
  ];
  if (tokFiles) {
    files.push(bytesFile('tokenizer/tokenizer.json', asBytes(tokFiles.tokenizerJson)), bytesFile('tokenizer/tokenizer_config.json', asBytes(tokFiles.tokenizerConfig)));
    if (tokFiles.chatTemplate) files.push(textFile('tokenizer/chat_template.jinja', tokFiles.chatTemplate));
  }
  for (const f of input.adapter?.files ?? []) files.push({ name: `adapter/${f.name}`, size: f.size, chunks: () => f.chunks() });
  return { files, notes };
}

/** The bundle as one .zip (default) or a folder, checked and ready to write. */
export async function planRunBundle(input: RunBundleInput, layout: 'zip' | 'folder' = 'zip'): Promise<RunBundlePlan> {
  const { files, notes } = await runBundleFiles(input);
  const name = `${input.name ? baseName(input.name) : baseName(input.modelId)}-run-bundle`;
  const total = files.reduce((s, f) => s + (f.size ?? 0), 0);
  if (layout === 'folder') return { layout: 'folder', name, files, totalBytes: total, notes };
  const zipName = `${name}.zip`;
  const zip: ExportFile = { name: zipName, chunks: () => zipStream(files, { mtime: input.now }) };
  // Local headers, central directory and the end record: about 100 bytes a member, plus the names.
  const overhead = files.reduce((s, f) => s + 128 + 2 * f.name.length, 128);
  return { layout: 'file', name: zipName, files: [zip], totalBytes: total + overhead, notes };
}
