// The trainer worker's export methods (TrainerApi.exportOptions / exportModel / cancelExport): the
// destination the page picked turned into a sink, a pool of quantization workers (GGUF k-quants on
// the GPU: src/engine/kquant-gpu.ts), one export at a time. The work itself is
// src/engine/export-run.ts, shared with the headless runner.
import type { ExportDone, ExportOptionsView, ExportTarget, TrainerApi } from '../src/client/api.ts';
import { exportLoaded } from '../src/engine/export-run.ts';
import type { Kernels } from '../src/engine/kernels.ts';
import { gpuQuantizer, isSoftwareGpu, type GpuQuantizer } from '../src/engine/kquant-gpu.ts';
import { adapterFromLora, exportModelInfo, loraSettingsOf } from '../src/engine/export-source.ts';
import { uploadToHub } from '../src/io/hub-upload.ts';
import { peftAdapterFiles } from '../src/io/peft.ts';
import { planRunBundle } from '../src/io/run-bundle.ts';
import { writeExport } from '../src/io/sink.ts';
import type { LoadedModel } from '../src/engine/loader.ts';
import type { LoraSet } from '../src/engine/lora-weights.ts';
import type { ModelCache } from '../src/io/cache.ts';
import type { TemplateId } from '../src/data/templates.ts';
import { ExportError } from '../src/io/export-job-errors.ts';
import { exportSizes, type ExportModel, type ExportPlan } from '../src/io/export-job.ts';
import { openModelFiles, type ModelFiles, type ModelSourceSpec } from '../src/io/model-source.ts';
import { browserStorageSink, DirectoryHandleSink, EXPORTS_FOLDER, FileHandleSink, type DirectoryHandleLike, type FileHandleLike } from '../src/io/sink-browser.ts';
import type { ExportSink } from '../src/io/sink.ts';
import { browserPoolSize, createBrowserQuantPool } from './quant-pool.ts';

export interface ExportHost {
  model(): LoadedModel | null;
  /** The source the model was loaded from (to re-read its weights through the cache). */
  source(m: LoadedModel): ModelSourceSpec | null;
  adapter(): LoraSet | null;
  training(): boolean;
  device(): Promise<GPUDevice>;
  /** The engine's kernels on that device: GGUF k-quants run there (src/engine/kquant-gpu.ts). */
  kernels?(): Promise<Kernels>;
  cache(): Promise<ModelCache>;
}

type ExportMethods = Pick<TrainerApi, 'exportOptions' | 'exportModel' | 'cancelExport' | 'exportRunBundle' | 'uploadAdapter'>;

export function exportApi(host: ExportHost): ExportMethods {
  let running: AbortController | null = null;
  const files = new WeakMap<LoadedModel, Promise<ModelFiles>>();
  const infos = new WeakMap<LoadedModel, Map<string, Promise<ExportModel>>>();

  const filesOf = (m: LoadedModel): Promise<ModelFiles> => {
    let f = files.get(m);
    if (!f) {
      const source = host.source(m);
      if (!source) return Promise.reject(new Error(`The source of ${m.summary.id} is not known: load the model again.`));
      // The very commit that was loaded, through the same cache.
      const pinned: ModelSourceSpec = source.kind === 'hub' ? { ...source, revision: m.summary.revision ?? source.revision } : source;
      f = host.cache().then((cache) => openModelFiles(pinned, { cache }));
      f.catch(() => files.delete(m));
      files.set(m, f);
    }
    return f;
  };
  const infoOf = (m: LoadedModel, template?: TemplateId): Promise<ExportModel> => {
    let byTemplate = infos.get(m);
    if (!byTemplate) infos.set(m, (byTemplate = new Map()));
    const key = template ?? '';
    let i = byTemplate.get(key);
    if (!i) {
      i = filesOf(m).then((f) => exportModelInfo(m, f, { template }));
      i.catch(() => byTemplate.delete(key));
      byTemplate.set(key, i);
    }
    return i;
  };

  /** The loaded model and its trained adapter, read back from the GPU (bundle and upload). */
  const trained = async () => {
    const m = host.model();
    const set = host.adapter();
    if (!m) throw new ExportError('bad-request', 'Load a model first.');
    if (!set) throw new ExportError('no-adapter', 'There is no trained adapter: train one in the Train tab first.');
    if (host.training()) throw new ExportError('bad-request', 'Training is running: export once it has finished or been stopped.');
    return { m, adapter: await adapterFromLora(await host.device(), m.arch, set, { id: m.summary.id, revision: m.summary.revision }) };
  };

  return {
    async exportRunBundle(run, target, onProgress) {
      if (running) throw new ExportError('bad-request', 'An export is already running: wait for it to finish or cancel it.');
      const ctrl = new AbortController();
      running = ctrl;
      try {
        const { m, adapter } = await trained();
        const { adapterStep, ...input } = run;
        const dropout = { ...adapter, settings: { ...adapter.settings, loraDropout: run.settings.loraDropout ?? 0 } };
        const plan = await planRunBundle({
          ...input,
          modelId: m.summary.id,
          modelType: m.arch.modelType,
          baseQuantization: 'nf4', // the studio loads every base as NF4 (QLoRA)
          adapter: { files: peftAdapterFiles(m.arch, dropout), step: adapterStep },
        });
        const id = `${new Date().toISOString().replace(/[:.]/g, '-')}`;
        const sink = await sinkFor(target, plan, id);
        const r = await writeExport(plan.files, sink, { signal: ctrl.signal, totalBytes: plan.totalBytes, onProgress });
        return { ...r, kind: 'bundle', layout: plan.layout, name: plan.name, where: sink.where, notes: plan.notes, target: target.kind, browserFolder: target.kind === 'browser-storage' ? `${EXPORTS_FOLDER}/${id}` : null };
      } finally {
        if (running === ctrl) running = null;
      }
    },

    async uploadAdapter(request, onProgress) {
      const { m, adapter } = await trained();
      const card = { ...request.card, baseModel: m.summary.id, settings: adapter.settings };
      return uploadToHub({ repo: request.repo, token: request.token, private: request.private, hubUrl: request.hubUrl, kind: 'adapter', files: peftAdapterFiles(m.arch, adapter, card), onProgress });
    },

    async exportOptions(template): Promise<ExportOptionsView> {
      const m = host.model();
      const set = host.adapter();
      const view: ExportOptionsView = { modelId: m?.summary.id ?? null, hasAdapter: set !== null, baseOrigin: null, sizes: null, problem: null, poolSize: browserPoolSize() };
      if (!m) return { ...view, problem: 'No model is loaded.' };
      view.baseOrigin = m.summary.quantization === 'bnb-4bit' ? 'nf4' : '16-bit';
      try {
        view.sizes = exportSizes(await infoOf(m, template), set ? loraSettingsOf(set, { id: m.summary.id }) : null);
      } catch (e) {
        view.problem = `The export sizes could not be worked out: ${(e as Error).message}`;
      }
      return view;
    },

    async exportModel(request, target, onProgress): Promise<ExportDone> {
      const m = host.model();
      if (!m) throw new ExportError('bad-request', 'Load a model first: exports read its weights and tokenizer.');
      if (running) throw new ExportError('bad-request', 'An export is already running: wait for it to finish or cancel it.');
      if (host.training()) throw new ExportError('bad-request', 'Training is running: export once it has finished or been stopped.');
      const ctrl = new AbortController();
      running = ctrl;
      const id = `${new Date().toISOString().replace(/[:.]/g, '-')}`;
      const pool = request.kind === 'adapter' ? undefined : createBrowserQuantPool();
      // GGUF: quantized on the GPU (the pool merges, and quantizes the types the GPU does not),
      // unless the GPU is the CPU in disguise (SwiftShader): the pool is faster there.
      let quantizer: GpuQuantizer | undefined;
      try {
        const kernels = request.kind === 'gguf' && pool && host.kernels ? await host.kernels() : null;
        if (kernels && !isSoftwareGpu(kernels.gpu.info)) quantizer = gpuQuantizer(kernels, { fallback: (t, w) => pool!.quantize(t, w) });
        const set = host.adapter();
        const result = await exportLoaded(
          {
            loaded: m,
            files: await filesOf(m),
            lora: set ? { set, device: await host.device() } : null,
            pool,
            quantizer,
            sink: (plan) => sinkFor(target, plan, id),
          },
          request,
          { signal: ctrl.signal, onProgress: (p) => onProgress(p) },
        );
        return { ...result, target: target.kind, browserFolder: target.kind === 'browser-storage' ? `${EXPORTS_FOLDER}/${id}` : null };
      } finally {
        quantizer?.destroy();
        pool?.close();
        if (running === ctrl) running = null;
      }
    },

    async cancelExport() {
      running?.abort(new ExportError('cancelled', 'Export cancelled.'));
    },
  };
}

async function sinkFor(target: ExportTarget, plan: Pick<ExportPlan, 'layout' | 'name' | 'files'>, id: string): Promise<ExportSink> {
  if (target.kind === 'browser-storage') return browserStorageSink(id);
  if (target.kind === 'file') {
    if (plan.layout !== 'file') {
      throw new ExportError('bad-request', `This export is a folder of ${plan.files.length} files (${plan.files.map((f) => f.name).join(', ')}): pick a folder, not a file.`);
    }
    return new FileHandleSink(target.handle as unknown as FileHandleLike, `the file you picked (${target.handle.name})`);
  }
  const picked = target.handle as unknown as DirectoryHandleLike;
  if (plan.layout === 'file') return new DirectoryHandleSink(picked, `the folder you picked (${picked.name})`);
  // A folder export goes into a new folder named after it; a cancelled one leaves no empty folder.
  const sub = await picked.getDirectoryHandle(plan.name, { create: true });
  return new DirectoryHandleSink(sub, `${picked.name}/${plan.name}, in the folder you picked`, undefined, () => picked.removeEntry(plan.name));
}
