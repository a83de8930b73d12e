// `--adapter DIR`: a saved PEFT adapter folder (adapter_config.json + adapter_model.safetensors),
// read and checked against the model, and the model's facts an export needs, read from its files
// without loading it onto a GPU (merging and quantizing run on the CPU).
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseModelConfig } from '../../src/engine/arch.ts';
import type { ExportableModel } from '../../src/engine/export-source.ts';
import { TOKENIZER_FILES } from '../../src/engine/loader.ts';
import type { ModelFiles } from '../../src/io/model-source.ts';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, readPeftAdapter, type ReadPeftResult } from '../../src/io/peft.ts';
import { UsageError } from './flag-values.ts';

export async function exportableModel(files: ModelFiles, signal?: AbortSignal): Promise<ExportableModel> {
  const text = async (path: string) => new TextDecoder().decode(await files.bytes(path, signal));
  if (!files.has('config.json')) throw new Error(`${files.id} has no config.json: it is not a transformers model.`);
  const arch = parseModelConfig(JSON.parse(await text('config.json')));
  const tokenizerFiles = new Map<string, string>();
  for (const f of TOKENIZER_FILES) if (files.has(f)) tokenizerFiles.set(f, await text(f));
  return {
    arch,
    tokenizerFiles,
    summary: { id: files.id, revision: files.revision, quantization: arch.quantization.method === 'bnb-nf4' ? 'bnb-4bit' : 'nf4' },
  };
}

export async function readSavedAdapter(dir: string, model: ExportableModel): Promise<ReadPeftResult> {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UsageError(`--adapter ${dir}: there is no such folder.`);
  for (const f of [ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE]) {
    if (!existsSync(join(dir, f))) throw new UsageError(`--adapter ${dir} has no ${f}: it is not a PEFT adapter folder.`);
  }
  try {
    return await readPeftAdapter(
      { config: readFileSync(join(dir, ADAPTER_CONFIG_FILE), 'utf8'), weights: new Uint8Array(readFileSync(join(dir, ADAPTER_WEIGHTS_FILE))) },
      model.arch,
    );
  } catch (e) {
    throw new UsageError(`--adapter ${dir} does not fit ${model.summary.id}: ${(e as Error).message}.`);
  }
}
