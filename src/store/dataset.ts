// The Data tab's state: the chosen source, what the data worker found in it (format, columns,
// first records), the person's mapping and options, the preview, a running preparation, and
// the prepared datasets stored in IndexedDB (listed through the worker). The records themselves
// and the prepared rows stay in the worker.
import { create } from 'zustand';
import { data, errorMessage } from '../client/index.ts';
import type { DatasetSource, HubEndpoints, PrepareRequest } from '../client/index.ts';
import type { FormatMapping, InspectResult, PreparedManifest, PrepareProgress, PreviewResult, TemplateId, TokenizerSource } from '../data/index.ts';
import { useCatalogStore } from './catalog.ts';
import { useModelStore } from './model.ts';
import { useSettingsStore } from './settings.ts';

export interface PrepareSettings {
  template: TemplateId;
  trainOnResponsesOnly: boolean;
  maxSeqLength: number;
  overflow: 'truncate' | 'drop';
  packing: boolean;
  /** 0..50 */
  validationPercent: number;
  seed: number;
}

export const DEFAULT_PREPARE_SETTINGS: Readonly<PrepareSettings> = Object.freeze({
  template: 'chatml',
  trainOnResponsesOnly: true,
  maxSeqLength: 2048,
  overflow: 'truncate',
  packing: true,
  validationPercent: 0,
  seed: 0,
});

export interface Loadable<T> {
  status: 'idle' | 'loading' | 'ready' | 'error';
  value: T | null;
  error: string | null;
}

const idle = { status: 'idle', value: null, error: null } as const;
const loading = { status: 'loading', value: null, error: null } as const;

export interface PrepareJob {
  id: string;
  progress: PrepareProgress | null;
  cancelling: boolean;
}

interface DatasetState {
  source: DatasetSource | null;
  inspection: Loadable<InspectResult>;
  /** What preview and prepare use: the detected mapping until the person edits it. */
  mapping: FormatMapping | null;
  mappingEdited: boolean;
  settings: PrepareSettings;
  preview: Loadable<PreviewResult>;
  job: PrepareJob | null;
  /** The last preparation's outcome. */
  result: PreparedManifest | null;
  prepareError: { message: string; cancelled: boolean } | null;
  prepared: Loadable<PreparedManifest[]>;
  /** Fingerprint of the dataset training will use (kept in localStorage). */
  selected: string | null;

  chooseSource(source: DatasetSource): Promise<void>;
  setMapping(mapping: FormatMapping | null): Promise<void>;
  setSettings(patch: Partial<PrepareSettings>): void;
  refreshPreview(): Promise<void>;
  prepare(): Promise<void>;
  /** Continues a partial demo or Hub preparation from its stored shards. */
  continuePrepared(fingerprint: string): Promise<void>;
  cancel(): Promise<void>;
  loadPrepared(): Promise<void>;
  select(fingerprint: string | null): void;
  remove(fingerprint: string): Promise<void>;
}

const SELECTED_KEY = 'webtune.dataset.selected.v1';

function loadSelected(): string | null {
  try {
    return localStorage.getItem(SELECTED_KEY);
  } catch {
    return null;
  }
}

function saveSelected(fp: string | null): void {
  try {
    if (fp) localStorage.setItem(SELECTED_KEY, fp);
    else localStorage.removeItem(SELECTED_KEY);
  } catch {
    // storage refused: the choice holds for this page
  }
}

/** The Hub endpoints from the settings. */
export function hubEndpoints(): HubEndpoints {
  const { hubUrl, datasetsUrl } = useSettingsStore.getState().effective;
  const token = useModelStore.getState().token;
  return { endpoint: hubUrl, datasetsServer: datasetsUrl, ...(token ? { token } : {}) };
}

/**
 * The tokenizer to prepare with: the loaded Hub model's (the same files, through the worker's Hub
 * client), else the demo model's, served next to the app.
 */
export function tokenizerSource(): TokenizerSource {
  const { model, token } = useModelStore.getState();
  if (model?.source === 'hub' && model.tokenizerFiles.includes('tokenizer.json')) {
    return { kind: 'hub', id: model.id, endpoint: useSettingsStore.getState().effective.hubUrl, revision: model.revision ?? undefined, token: token || undefined };
  }
  const { manifest, baseUrl } = useCatalogStore.getState();
  if (!manifest) throw new Error("The demo model's tokenizer is not available: the demo manifest did not load.");
  return { kind: 'url', id: manifest.model.id, url: new URL(`${manifest.model.path.replace(/\/?$/, '/')}`, baseUrl).href };
}

/** Which tokenizer preparing would use now (re-renders when a model loads). */
export function useTokenizerKey(): string | null {
  const model = useModelStore((s) => (s.model?.source === 'hub' ? `${s.model.id}@${s.model.revision}` : null));
  const demo = useCatalogStore((s) => s.manifest?.model.id ?? null);
  return model ?? demo;
}

function request(s: Pick<DatasetState, 'mapping' | 'settings'>): PrepareRequest {
  const { validationPercent, ...rest } = s.settings;
  return { ...rest, validationFraction: validationPercent / 100, mapping: s.mapping, tokenizer: tokenizerSource() };
}

let inspectAttempt = 0;
let previewAttempt = 0;
let previewTimer: ReturnType<typeof setTimeout> | null = null;
let jobCounter = 0;

export const useDatasetStore = create<DatasetState>()((set, get) => {
  const schedulePreview = (): void => {
    if (previewTimer) clearTimeout(previewTimer);
    previewTimer = setTimeout(() => void get().refreshPreview(), 250);
  };

  /** One preparation at a time; its progress lands in `job`, its outcome in `result` or `prepareError`. */
  const runJob = async (start: (id: string, onProgress: (p: PrepareProgress) => void) => Promise<PreparedManifest>): Promise<void> => {
    const id = `prepare-${Date.now()}-${++jobCounter}`;
    set({ job: { id, progress: null, cancelling: false }, prepareError: null, result: null });
    try {
      const manifest = await start(id, (progress) => {
        const job = get().job;
        if (job?.id === id) set({ job: { ...job, progress } });
      });
      set({ result: manifest, job: null });
      get().select(manifest.fingerprint);
    } catch (e) {
      const cancelled = (e as { name?: string }).name === 'AbortError';
      set({ job: null, prepareError: { message: errorMessage(e), cancelled } });
    } finally {
      void get().loadPrepared();
    }
  };

  const inspect = async (source: DatasetSource, mapping: FormatMapping | null): Promise<void> => {
    const mine = ++inspectAttempt;
    set({ inspection: loading });
    try {
      const result = await data.inspect(source, mapping);
      if (mine !== inspectAttempt) return;
      set({ inspection: { status: 'ready', value: result, error: null }, mapping: result.mapping });
      if (result.mapping) schedulePreview();
      else set({ preview: idle });
    } catch (e) {
      if (mine === inspectAttempt) set({ inspection: { status: 'error', value: null, error: errorMessage(e) }, preview: idle });
    }
  };

  return {
    source: null,
    inspection: idle,
    mapping: null,
    mappingEdited: false,
    settings: { ...DEFAULT_PREPARE_SETTINGS },
    preview: idle,
    job: null,
    result: null,
    prepareError: null,
    prepared: idle,
    selected: loadSelected(),

    async chooseSource(source) {
      set({ source, mapping: null, mappingEdited: false, preview: idle, result: null, prepareError: null });
      await inspect(source, null);
    },

    async setMapping(mapping) {
      const { source } = get();
      set({ mapping, mappingEdited: mapping !== null });
      if (source) await inspect(source, mapping);
    },

    setSettings(patch) {
      set({ settings: { ...get().settings, ...patch } });
      if (get().mapping) schedulePreview();
    },

    async refreshPreview() {
      const s = get();
      if (!s.source || !s.mapping) return;
      const mine = ++previewAttempt;
      set({ preview: { status: 'loading', value: s.preview.value, error: null } });
      try {
        const value = await data.preview(s.source, request(s), 3);
        if (mine === previewAttempt) set({ preview: { status: 'ready', value, error: null } });
      } catch (e) {
        if (mine === previewAttempt) set({ preview: { status: 'error', value: null, error: errorMessage(e) } });
      }
    },

    async prepare() {
      const s = get();
      if (!s.source || s.job) return;
      let req: PrepareRequest;
      try {
        req = request(s);
      } catch (e) {
        set({ prepareError: { message: errorMessage(e), cancelled: false } });
        return;
      }
      const source = s.source;
      await runJob((id, onProgress) => data.prepare(id, source, req, onProgress));
    },

    async continuePrepared(fingerprint) {
      if (get().job) return;
      await runJob((id, onProgress) => data.resumePrepared(id, fingerprint, onProgress));
    },

    async cancel() {
      const job = get().job;
      if (!job) return;
      set({ job: { ...job, cancelling: true } });
      await data.cancel(job.id);
    },

    async loadPrepared() {
      set({ prepared: { ...get().prepared, status: 'loading' } });
      try {
        const list = await data.listPrepared();
        set({ prepared: { status: 'ready', value: list, error: null } });
        const selected = get().selected;
        if (selected && !list.some((m) => m.fingerprint === selected && m.status === 'complete')) get().select(null);
      } catch (e) {
        set({ prepared: { status: 'error', value: get().prepared.value, error: errorMessage(e) } });
      }
    },

    select(fingerprint) {
      saveSelected(fingerprint);
      set({ selected: fingerprint });
    },

    async remove(fingerprint) {
      await data.deletePrepared(fingerprint);
      if (get().selected === fingerprint) get().select(null);
      if (get().result?.fingerprint === fingerprint) set({ result: null });
      await get().loadPrepared();
    },
  };
});

/** The selected prepared dataset, once the list from IndexedDB has it. */
export function useSelectedDataset(): PreparedManifest | null {
  return useDatasetStore((s) => (s.selected ? (s.prepared.value?.find((m) => m.fingerprint === s.selected && m.status === 'complete') ?? null) : null));
}
