// An export of the loaded model and its trained LoRA set, start to end: plan (every check, before
// any work), read the adapter back from the GPU, open the base weights only when the export needs
// them, stream the files to the sink. The trainer worker calls it with a browser sink and a pool of
// module Workers; the headless runner with a NodeDirectorySink and a worker_threads pool:
//
//   const pool = createNodeQuantPool();                       // src/io/quant-pool-node.ts
//   try {
//     const r = await exportLoaded(
//       { loaded, files, lora: { set, device } /* or { adapter } from readPeftAdapter */, pool, sink: () => new NodeDirectorySink(dir) },
//       { kind: 'gguf', ggufType: 'q4_k_m', template: 'chatml' },
//       { signal, onProgress },
//     );                                                       // r.files, r.bytes, r.seconds, r.notes
//   } finally {
//     pool.close();
//   }

import type { TemplateId } from '../data/templates.ts';
import { planExport, runExport, type ExportPlan, type ExportRequest, type ExportResult } from '../io/export-job.ts';
import type { ExportProgress } from '../io/export-job-progress.ts';
import type { GgufQuantizer } from '../io/gguf-model.ts';
import type { WeightSource } from '../io/export-arch.ts';
import type { ModelFiles } from '../io/model-source.ts';
import type { QuantPool } from '../io/quant-pool.ts';
import type { ExportSink } from '../io/sink.ts';
import { adapterFromLora, exportModelInfo, openCheckpointWeights, type CheckpointWeights, type ExportableModel } from './export-source.ts';
import type { LoraSet } from './lora-weights.ts';
import type { LoraAdapter } from '../io/peft.ts';

export interface LoadedExportRequest extends ExportRequest {
  /** The chat template the adapter was trained with (written into tokenizer files, GGUF, Modelfile). */
  template?: TemplateId;
  /** Jinja of a 'custom' template. */
  templateSource?: string;
  /** lora_dropout the adapter was trained with (adapter_config.json; a LoRA set does not keep it). */
  loraDropout?: number;
}

export interface LoadedExportDeps {
  /** The loaded model (LoadedModel), or its files' facts (ExportableModel) for a saved adapter. */
  loaded: ExportableModel;
  /** The files the model was loaded from, through the same cache. */
  files: ModelFiles;
  /** The trained LoRA set and the device that holds it, or an adapter already in memory (a saved
   *  one read with readPeftAdapter); null when there is none. */
  lora: { set: LoraSet; device: GPUDevice } | { adapter: LoraAdapter } | null;
  /** Workers for quantizing and merging (default: this thread). */
  pool?: QuantPool;
  /** GGUF quantizer in place of the pool's (gpuQuantizer, src/engine/kquant-gpu.ts). */
  quantizer?: GgufQuantizer;
  /** The destination, made once the plan says what is written (one file or a folder, its name). */
  sink: (plan: ExportPlan) => ExportSink | Promise<ExportSink>;
}

export interface ExportRunOptions {
  signal?: AbortSignal;
  onProgress?: (p: ExportProgress) => void;
}

export async function exportLoaded(deps: LoadedExportDeps, request: LoadedExportRequest, opts: ExportRunOptions = {}): Promise<ExportResult> {
  const { loaded } = deps;
  const info = await exportModelInfo(loaded, deps.files, { template: request.template, templateSource: request.templateSource, signal: opts.signal });
  const lora = request.withoutAdapter === true ? null : deps.lora;
  let adapter = !lora
    ? null
    : 'adapter' in lora
      ? lora.adapter
      : await adapterFromLora(lora.device, loaded.arch, lora.set, { id: loaded.summary.id, revision: loaded.summary.revision });
  if (adapter && request.loraDropout !== undefined) adapter = { ...adapter, settings: { ...adapter.settings, loraDropout: request.loraDropout } };
  // Opened on the first read: an adapter export never touches the base weights.
  const opened: { weights: Promise<CheckpointWeights> | null } = { weights: null };
  const open = (): Promise<CheckpointWeights> => (opened.weights ??= openCheckpointWeights(deps.files, opts.signal));
  const base: WeightSource = {
    read: async (name) => (await open()).read(name),
    readRows: async (name, start, count) => (await open()).readRows!(name, start, count),
  };
  const plan = planExport({ ...info, base }, adapter, request, { pool: deps.pool, quantizer: deps.quantizer });
  try {
    return await runExport(plan, await deps.sink(plan), opts);
  } finally {
    await opened.weights?.then((w) => w.close(), () => undefined);
  }
}
