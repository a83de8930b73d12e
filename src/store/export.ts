// The Export tab's state: what can be exported (sizes from the trainer worker), the choices (GGUF
// type, merged dtype, Modelfile, where to save), and the one export job: its progress, how it ended
// and where the files went.
//
// Saving: with the File System Access API (Chrome, Edge) the person picks a file or a folder and
// the worker writes straight into it; elsewhere (or when asked) the worker writes to the browser's
// private storage and the page downloads each file from there — a File backed by the disk, so a
// large export never sits in memory. The pickers need the click's user activation: start() calls
// them before its first await.
import { create } from 'zustand';
import {
  errorMessage,
  trainer,
  type BundleDone,
  type ExportDone,
  type ExportOptionsView,
  type ExportProgress,
  type ExportRequest,
  type ExportTarget,
} from '../client/index.ts';
import type { TemplateId } from '../data/templates.ts';
import { exportBaseName, isGgufExportType, RECOMMENDED_GGUF_TYPE, type ExportCardFacts, type ExportKind, type GgufExportType } from '../client/export-offer.ts';
import type { MergedDtype } from '../io/export-merged.ts';
import { useDatasetStore } from './dataset.ts';
import { runBundleRequest } from './run-bundle-request.ts';
import { useModelStore } from './model.ts';
import { effectiveSettings, useRunStore } from './run.ts';

export type { ExportKind, GgufExportType, MergedDtype };

/** A model export, or the run bundle (the same job, sinks and targets). */
export type JobKind = ExportKind | 'bundle';

/** 'pick': a file or folder through the File System Access API; 'download': the browser's downloads. */
export type SaveMode = 'pick' | 'download';

export type JobStatus = 'picking' | 'running' | 'done' | 'error' | 'cancelled';

export interface DownloadLink {
  name: string;
  url: string;
}

export interface ExportJob {
  kind: JobKind;
  /** What it is, for people: "GGUF Q4_K_M", "merged bf16", "adapter". */
  label: string;
  status: JobStatus;
  progress: ExportProgress | null;
  result: ExportDone | BundleDone | null;
  /** Downloads started from the browser's storage (links to start them again). */
  downloads: DownloadLink[];
  error: string | null;
  /** ExportError's reason (no-adapter, disk-full, …) when the worker gave one. */
  reason: string | null;
}

interface ExportState {
  options: ExportOptionsView | null;
  optionsError: string | null;
  ggufType: GgufExportType;
  mergedDtype: MergedDtype;
  modelfile: boolean;
  saveMode: SaveMode;
  job: ExportJob | null;
  refreshOptions(): Promise<void>;
  setGgufType(t: GgufExportType): void;
  setMergedDtype(d: MergedDtype): void;
  setModelfile(on: boolean): void;
  setSaveMode(m: SaveMode): void;
  /** Call from the click handler itself (the pickers need its user activation). */
  start(kind: JobKind): Promise<void>;
  cancel(): Promise<void>;
  dismiss(): void;
}

const PREFS_KEY = 'webtune.export.v1';

interface Prefs {
  ggufType: GgufExportType;
  mergedDtype: MergedDtype;
  modelfile: boolean;
  saveMode: SaveMode;
}

type Pickers = {
  showSaveFilePicker?: (o: { suggestedName?: string; id?: string; types?: { description: string; accept: Record<string, string[]> }[] }) => Promise<FileSystemFileHandle>;
  showDirectoryPicker?: (o: { id?: string; mode?: 'read' | 'readwrite' }) => Promise<FileSystemDirectoryHandle>;
};
const pickers = (): Pickers => globalThis as unknown as Pickers;

/** Whether this browser can write to a file or folder a person picks. */
export function canPick(): boolean {
  const p = pickers();
  return typeof p.showSaveFilePicker === 'function' && typeof p.showDirectoryPicker === 'function';
}

function loadPrefs(): Prefs {
  const d: Prefs = { ggufType: RECOMMENDED_GGUF_TYPE, mergedDtype: 'bfloat16', modelfile: true, saveMode: canPick() ? 'pick' : 'download' };
  try {
    const v = JSON.parse(localStorage.getItem(PREFS_KEY) ?? '{}') as Partial<Prefs>;
    return {
      ggufType: isGgufExportType(v.ggufType) ? v.ggufType : d.ggufType,
      mergedDtype: v.mergedDtype === 'float16' ? 'float16' : d.mergedDtype,
      modelfile: v.modelfile !== false,
      saveMode: v.saveMode === 'pick' && canPick() ? 'pick' : v.saveMode === 'download' ? 'download' : d.saveMode,
    };
  } catch {
    return d;
  }
}

function savePrefs(s: Prefs): void {
  try {
    localStorage.setItem(PREFS_KEY, JSON.stringify({ ggufType: s.ggufType, mergedDtype: s.mergedDtype, modelfile: s.modelfile, saveMode: s.saveMode }));
  } catch {
    // private mode: the choices last for this page
  }
}

/** The template the adapter was trained with: the selected prepared dataset's (a custom template's
 *  Jinja is not kept with the dataset, so the tokenizer's own is left then). */
function trainingTemplate(): TemplateId | undefined {
  const ds = useDatasetStore.getState();
  const m = ds.selected ? ds.prepared.value?.find((x) => x.fingerprint === ds.selected) : undefined;
  const id = m?.template.id;
  return id && id !== 'custom' ? id : undefined;
}

/** The run as the adapter's README tells it (transformers' TrainingArguments names). */
export function cardFacts(): ExportCardFacts {
  const run = useRunStore.getState();
  const s = effectiveSettings(run);
  const ds = useDatasetStore.getState();
  const dataset = ds.selected ? ds.prepared.value?.find((x) => x.fingerprint === ds.selected) : undefined;
  const done = run.metrics.filter((m) => !m.skipped && Number.isFinite(m.loss));
  const every = Math.max(1, Math.ceil(done.length / 10));
  const facts: ExportCardFacts = {};
  if (dataset) facts.datasets = [dataset.name];
  if (s) {
    facts.training = {
      learning_rate: s.learningRate,
      lr_scheduler_type: s.schedule,
      warmup_steps: s.warmupSteps ?? null,
      per_device_train_batch_size: s.batchSize,
      gradient_accumulation_steps: s.gradAccum,
      ...(s.maxSteps !== undefined ? { max_steps: s.maxSteps } : { num_train_epochs: s.epochs ?? 1 }),
      optim: s.optimizer,
      weight_decay: s.weightDecay,
      max_grad_norm: s.maxGradNorm,
      seed: s.seed,
      ...(dataset ? { max_seq_length: dataset.options.maxSeqLength, packing: dataset.options.packing } : {}),
    };
  }
  if (run.metrics.length > 0) {
    facts.steps = run.metrics[run.metrics.length - 1].step;
    facts.tokens = run.metrics[run.metrics.length - 1].trainedTokens;
  }
  if (done.length > 0) {
    facts.finalLoss = done[done.length - 1].loss;
    facts.losses = done.filter((_, i) => i % every === 0 || i === done.length - 1).map((m) => ({ step: m.step, loss: m.loss }));
  }
  return facts;
}

/** What the export is called on disk, for the save picker's suggestion (export-job.ts names it the same). */
function suggestedFileName(kind: JobKind, s: Pick<ExportState, 'ggufType' | 'options'>): string {
  const base = exportBaseName(s.options?.modelId ?? useModelStore.getState().model?.id ?? 'model');
  if (kind === 'bundle') return `${base}-run-bundle.zip`;
  return kind === 'adapter' ? `${base}-lora.zip` : `${base}-${s.ggufType.toUpperCase()}.gguf`;
}

/** One file (the adapter's zip, a GGUF alone) goes to a picked file; the rest to a picked folder. */
function wantsFolder(kind: JobKind, modelfile: boolean): boolean {
  return kind === 'merged' || (kind === 'gguf' && modelfile);
}

function labelOf(kind: JobKind, s: Pick<ExportState, 'ggufType' | 'mergedDtype'>): string {
  if (kind === 'bundle') return 'run bundle';
  if (kind === 'adapter') return 'LoRA adapter';
  if (kind === 'merged') return `merged ${s.mergedDtype === 'bfloat16' ? 'bf16' : 'f16'} model`;
  return `GGUF ${s.ggufType.toUpperCase()}`;
}

async function pickTarget(kind: JobKind, s: ExportState): Promise<ExportTarget | null> {
  if (s.saveMode === 'download' || !canPick()) return { kind: 'browser-storage' };
  const p = pickers();
  try {
    if (wantsFolder(kind, s.modelfile)) return { kind: 'folder', handle: await p.showDirectoryPicker!({ id: 'webtune-export', mode: 'readwrite' }) };
    const name = suggestedFileName(kind, s);
    const ext = name.slice(name.lastIndexOf('.'));
    const accept: Record<string, string[]> = ext === '.zip' ? { 'application/zip': ['.zip'] } : { 'application/octet-stream': ['.gguf'] };
    return { kind: 'file', handle: await p.showSaveFilePicker!({ suggestedName: name, id: 'webtune-export', types: [{ description: ext === '.zip' ? 'Zip archive' : 'GGUF model', accept }] }) };
  } catch (e) {
    if ((e as { name?: string }).name === 'AbortError') return null; // the person closed the picker
    throw e;
  }
}

/** Starts the browser's download of each exported file, read from the private storage as Files. */
async function downloadFromBrowserStorage(folder: string, names: readonly string[]): Promise<DownloadLink[]> {
  let dir = await navigator.storage.getDirectory();
  for (const part of folder.split('/')) dir = await dir.getDirectoryHandle(part);
  const links: DownloadLink[] = [];
  for (const name of names) {
    const file = await (await dir.getFileHandle(name)).getFile();
    // A typed slice (still the file on disk, not a copy): browsers add ".txt" to a sniffed text
    // file without an extension, which would rename the Modelfile.
    const link = { name, url: URL.createObjectURL(file.slice(0, file.size, 'application/octet-stream')) };
    links.push(link);
    clickDownload(link);
    await new Promise((r) => setTimeout(r, 300)); // browsers drop downloads started in the same instant
  }
  return links;
}

export function clickDownload(link: DownloadLink): void {
  const a = document.createElement('a');
  a.href = link.url;
  a.download = link.name;
  a.rel = 'noopener';
  document.body.append(a);
  a.click();
  a.remove();
}

function revoke(job: ExportJob | null): void {
  for (const d of job?.downloads ?? []) URL.revokeObjectURL(d.url);
}

/** Progress arrives a few times a second; React sees it at most once per frame. */
let pendingProgress: ExportProgress | null = null;
let progressFrame: number | null = null;

function queueProgress(p: ExportProgress): void {
  pendingProgress = p;
  progressFrame ??= requestAnimationFrame(() => {
    progressFrame = null;
    const job = useExportStore.getState().job;
    if (job?.status === 'running' && pendingProgress) useExportStore.setState({ job: { ...job, progress: pendingProgress } });
  });
}

const prefs = loadPrefs();

export const useExportStore = create<ExportState>()((set, get) => ({
  options: null,
  optionsError: null,
  ...prefs,
  job: null,

  async refreshOptions() {
    try {
      set({ options: await trainer.exportOptions(trainingTemplate()), optionsError: null });
    } catch (e) {
      set({ optionsError: `What can be exported could not be read from the trainer worker: ${errorMessage(e)}` });
    }
  },

  setGgufType(ggufType) {
    set({ ggufType });
    savePrefs(get());
  },
  setMergedDtype(mergedDtype) {
    set({ mergedDtype });
    savePrefs(get());
  },
  setModelfile(modelfile) {
    set({ modelfile });
    savePrefs(get());
  },
  setSaveMode(saveMode) {
    set({ saveMode });
    savePrefs(get());
  },

  async start(kind) {
    const s = get();
    if (s.job?.status === 'running' || s.job?.status === 'picking') return;
    revoke(s.job);
    const job: ExportJob = { kind, label: labelOf(kind, s), status: 'picking', progress: null, result: null, downloads: [], error: null, reason: null };
    set({ job });
    const update = (patch: Partial<ExportJob>): void => {
      const current = get().job;
      if (current?.kind === kind) set({ job: { ...current, ...patch } });
    };
    let target: ExportTarget | null;
    try {
      target = await pickTarget(kind, s);
    } catch (e) {
      update({ status: 'error', error: `The file picker failed: ${errorMessage(e)}. Choose "Browser downloads" below and export again.` });
      return;
    }
    if (!target) {
      set({ job: null });
      return;
    }
    update({ status: 'running' });
    const request: ExportRequest | null = kind === 'bundle' ? null : {
      kind,
      dtype: s.mergedDtype,
      ggufType: s.ggufType,
      modelfile: s.modelfile,
      template: trainingTemplate(),
      loraDropout: effectiveSettings(useRunStore.getState())?.loraDropout,
      card: cardFacts(),
    };
    try {
      // The bundle's records come from the data worker (its source read again) before any writing.
      const result = request ? await trainer.exportModel(request, target, queueProgress) : await trainer.exportRunBundle(await runBundleRequest(), target, queueProgress);
      pendingProgress = null;
      update({ status: 'done', result, progress: null });
      if (result.browserFolder) {
        try {
          update({ downloads: await downloadFromBrowserStorage(result.browserFolder, result.files.map((f) => f.name)) });
        } catch (e) {
          update({ status: 'error', error: `The export was written, but its download could not start: ${errorMessage(e)}. Export again, or choose a folder to save to.` });
        }
      }
    } catch (e) {
      pendingProgress = null;
      const reason = (e as { reason?: unknown }).reason;
      update({ status: reason === 'cancelled' ? 'cancelled' : 'error', error: errorMessage(e), reason: typeof reason === 'string' ? reason : null });
    }
  },

  async cancel() {
    if (get().job?.status !== 'running') return;
    try {
      await trainer.cancelExport();
    } catch (e) {
      const job = get().job;
      if (job) set({ job: { ...job, error: `The export could not be cancelled: ${errorMessage(e)}` } });
    }
  },

  dismiss() {
    const job = get().job;
    if (job?.status === 'running' || job?.status === 'picking') return;
    revoke(job);
    set({ job: null });
  },
}));

// Sizes and the adapter depend on the model and the run: read them again when those change.
useModelStore.subscribe((s, prev) => {
  if (s.model !== prev.model) void useExportStore.getState().refreshOptions();
});
useRunStore.subscribe((s, prev) => {
  if (s.hasAdapter !== prev.hasAdapter) void useExportStore.getState().refreshOptions();
});
useDatasetStore.subscribe((s, prev) => {
  if (s.selected !== prev.selected) void useExportStore.getState().refreshOptions(); // its template shapes the files
});
