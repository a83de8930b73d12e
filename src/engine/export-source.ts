// What the export job (src/io/export-job.ts) needs, taken from a loaded model and a trained LoRA set:
// config.json and the tokenizer files, the tensor list, and the base weights read back from the
// checkpoint through the model cache — the original 16/32-bit tensors, or for a bitsandbytes 4-bit
// checkpoint its NF4 linears dequantized on the CPU as bnb's dequantize_4bit does (rounded to the
// checkpoint's dtype). The GPU copies are never read back for the base: they are NF4 quantized
// here, i.e. not the original weights. The adapter is read back from the GPU (f32 master weights).
//
// Shared by the trainer worker and the headless runner (Node: pass its own ModelFiles / cache).

import { resolveTemplate, type TemplateId } from '../data/templates.ts';
import { tokenizerFromFiles } from '../data/tokenizer-load.ts';
import type { ExportModel, ExportTemplate } from '../io/export-job.ts';
import type { WeightSource } from '../io/export-arch.ts';
import type { ModelFiles } from '../io/model-source.ts';
import { BNB_4BIT_SUFFIXES, dequantizeNf4, parseBnbQuantState, type RawTensor } from '../io/nf4.ts';
import type { LoraAdapter, LoraSettings } from '../io/peft.ts';
import {
  DTYPE_BYTES,
  openSafetensors,
  openShardedSafetensors,
  parseShardIndex,
  SAFETENSORS_INDEX_FILE,
  SAFETENSORS_SINGLE_FILE,
  toF32,
  type TensorReader,
} from '../io/safetensors.ts';
import type { CachedFetch } from '../io/cache.ts';
import { allTensorSpecs, type ModelArch } from './arch.ts';
import type { LoadedModel, ModelSummary } from './loader.ts';

/** What exports use of a loaded model. The headless runner can build one from the model's files
 * (parseModelConfig, the tokenizer files) to export a saved adapter without loading onto a GPU. */
export type ExportableModel = Pick<LoadedModel, 'arch' | 'tokenizerFiles'> & { summary: Pick<ModelSummary, 'id' | 'revision' | 'quantization'> };
import { readLoraModules, type LoraSet } from './lora-weights.ts';

const QUANT_STATE_NF4 = 'weight.quant_state.bitsandbytes__nf4';

export interface CheckpointWeights extends WeightSource {
  /** '16-bit': the checkpoint's own float tensors; 'nf4': it is bitsandbytes 4-bit (linears dequantized). */
  origin: '16-bit' | 'nf4';
  /** Releases the cached files (OPFS access handles are exclusive). */
  close(): Promise<void>;
}

/** The checkpoint's tensors as f32, through the model's files (the cache). */
export async function openCheckpointWeights(files: ModelFiles, signal?: AbortSignal): Promise<CheckpointWeights> {
  const fetched: CachedFetch[] = [];
  const open = async (path: string) => {
    const f = await files.fetch(path, { signal });
    fetched.push(f);
    return f.source;
  };
  const close = async (): Promise<void> => {
    await Promise.allSettled(fetched.splice(0).map((f) => f.close()));
  };
  let reader: TensorReader;
  try {
    if (files.has(SAFETENSORS_INDEX_FILE)) {
      reader = await openShardedSafetensors(parseShardIndex(await files.bytes(SAFETENSORS_INDEX_FILE, signal)), open);
    } else if (files.has(SAFETENSORS_SINGLE_FILE)) {
      reader = await openSafetensors(await open(SAFETENSORS_SINGLE_FILE));
    } else {
      throw new Error(`${files.id} has no ${SAFETENSORS_SINGLE_FILE} or ${SAFETENSORS_INDEX_FILE} to read the base weights from`);
    }
  } catch (e) {
    await close();
    throw e;
  }
  const bnb = new Set(reader.tensors.filter((t) => t.name.endsWith(QUANT_STATE_NF4)).map((t) => t.name.slice(0, -QUANT_STATE_NF4.length)));
  const bnbPrefix = (name: string): string | null => {
    const prefix = name.endsWith('.weight') ? name.slice(0, -'weight'.length) : null;
    return prefix !== null && bnb.has(prefix) ? prefix : null;
  };
  const readNf4 = async (prefix: string): Promise<{ values: Float32Array; rows: number }> => {
    const parts: Record<string, RawTensor> = {};
    for (const suffix of BNB_4BIT_SUFFIXES) {
      const n = prefix + suffix;
      if (reader.has(n)) {
        const t = reader.get(n);
        parts[n] = { dtype: t.dtype, shape: t.shape, data: await reader.read(n) };
      }
    }
    const w = parseBnbQuantState(parts, prefix);
    return { values: dequantizeNf4(w, { toSourceDtype: true }), rows: w.shape[0] };
  };
  // Row reads of a 4-bit linear (big tensors are written in row chunks) share one dequantization.
  let lastNf4: { name: string; read: Promise<{ values: Float32Array; rows: number }> } | null = null;
  const nf4Rows = (name: string, prefix: string) => {
    if (lastNf4?.name !== name) lastNf4 = { name, read: readNf4(prefix) };
    return lastNf4.read;
  };
  return {
    origin: bnb.size > 0 ? 'nf4' : '16-bit',
    close,
    read(name) {
      const prefix = bnbPrefix(name);
      return prefix !== null ? readNf4(prefix).then((r) => r.values) : reader.readF32(name);
    },
    async readRows(name, start, count) {
      const prefix = bnbPrefix(name);
      if (prefix !== null) {
        const { values, rows } = await nf4Rows(name, prefix);
        const cols = values.length / rows;
        return values.subarray(start * cols, (start + count) * cols);
      }
      const t = reader.get(name);
      if (t.shape.length !== 2) throw new Error(`${name} is not 2-D: rows cannot be read`);
      const cols = t.shape[1];
      const elem = DTYPE_BYTES[t.dtype];
      return toF32(t, await reader.readRange(name, start * cols * elem, count * cols * elem));
    },
  };
}

/** The training template, resolved against the model's tokenizer as training resolved it. */
export async function exportTemplate(loaded: ExportableModel, id: TemplateId, source?: string): Promise<ExportTemplate> {
  const json = loaded.tokenizerFiles.get('tokenizer.json');
  if (!json) throw new Error(`${loaded.summary.id} has no tokenizer.json: the chat template cannot be resolved`);
  const config = loaded.tokenizerFiles.get('tokenizer_config.json');
  const tok = await tokenizerFromFiles(loaded.summary.id, {
    tokenizerJson: JSON.parse(json),
    tokenizerConfig: config ? (JSON.parse(config) as Record<string, unknown>) : {},
  });
  const t = resolveTemplate(id, tok.info, { source });
  return { id: t.id, exportSource: t.exportSource, eosRename: t.eosRename };
}

export interface ExportSourceOptions {
  /** The chat template the adapter was trained with (default: leave the tokenizer's own). */
  template?: TemplateId;
  /** Jinja of a 'custom' template. */
  templateSource?: string;
  signal?: AbortSignal;
}

/** The export job's view of a loaded model, base weights not opened yet (sizes, checks). */
export async function exportModelInfo(loaded: ExportableModel, files: Pick<ModelFiles, 'bytes'>, opts: ExportSourceOptions = {}): Promise<ExportModel> {
  const configText = new TextDecoder().decode(await files.bytes('config.json', opts.signal));
  const config = JSON.parse(configText) as Record<string, unknown>;
  const parsed = (f: string): unknown => {
    const s = loaded.tokenizerFiles.get(f);
    return s === undefined ? null : JSON.parse(s);
  };
  return {
    id: loaded.summary.id,
    arch: loaded.arch,
    config,
    configText,
    generationConfig: parsed('generation_config.json') as Record<string, unknown> | null,
    tokenizerJson: parsed('tokenizer.json'),
    tokenizerConfig: (parsed('tokenizer_config.json') as Record<string, unknown> | null) ?? {},
    tensors: tensorList(loaded.arch),
    base: {
      read: (name) => Promise.reject(new Error(`base weights not opened (reading ${name})`)),
    },
    baseOrigin: loaded.summary.quantization === 'bnb-4bit' ? 'nf4' : '16-bit',
    template: opts.template ? await exportTemplate(loaded, opts.template, opts.templateSource) : null,
  };
}

/** exportModelInfo with the base weights opened from the checkpoint; close() when done. */
export async function exportModelFromLoaded(
  loaded: ExportableModel,
  files: ModelFiles,
  opts: ExportSourceOptions = {},
): Promise<{ model: ExportModel; close(): Promise<void> }> {
  const info = await exportModelInfo(loaded, files, opts);
  const base = await openCheckpointWeights(files, opts.signal);
  return { model: { ...info, base, baseOrigin: base.origin }, close: () => base.close() };
}

/** The model's tensors in transformers' order (tied lm_head left out). */
export function tensorList(arch: ModelArch): { name: string; shape: number[] }[] {
  return allTensorSpecs(arch).map((t) => ({ name: t.name, shape: t.shape }));
}

/** The LoRA set's settings in PEFT's terms. */
export function loraSettingsOf(set: LoraSet, base: { id: string; revision?: string | null }): LoraSettings {
  return {
    r: set.spec.r,
    loraAlpha: set.spec.alpha,
    useRslora: set.spec.rslora ?? false,
    targetModules: [...set.spec.targets],
    layersToTransform: set.spec.layers ?? null,
    baseModelNameOrPath: base.id,
    revision: base.revision ?? null,
  };
}

/** The trained adapter read back from the GPU as a PEFT adapter. */
export async function adapterFromLora(device: GPUDevice, arch: ModelArch, set: LoraSet, base: { id: string; revision?: string | null }): Promise<LoraAdapter> {
  return { settings: loraSettingsOf(set, base), modules: await readLoraModules(device, arch, set) };
}
