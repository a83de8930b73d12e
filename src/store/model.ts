// The model the trainer worker holds, as the UI shows it: loading with progress, the summary, the
// presets with their memory plans, the browser cache of model files, and the Hugging Face token.
// The token is kept in this browser's localStorage only, is never logged, and goes to the worker
// with Hub loads, whose client sends it only to the configured Hub base URL.
import { create } from 'zustand';
import {
  errorMessage,
  trainer,
  trainerWorker,
  type CacheState,
  type LoadProgress,
  type ModelSourceSpec,
  type ModelSummary,
  type PresetView,
} from '../client/index.ts';
import { useCatalogStore } from './catalog.ts';
import { useGpuStore } from './gpu.ts';
import { useSettingsStore } from './settings.ts';

/** The summary of the model held by the trainer worker. */
export type LoadedModel = ModelSummary;

/** Generic progress of a long job (the dataset store shares it). */
export interface Progress {
  done: number;
  total: number;
  label: string;
}

/** What a person asked to load. */
export type LoadRequest = { kind: 'demo' } | { kind: 'hub'; id: string; revision?: string };

export type ModelStatus = 'none' | 'loading' | 'loaded' | 'error';

interface ModelState {
  status: ModelStatus;
  model: ModelSummary | null;
  /** What is loading now: the repo id, or 'demo'. */
  loading: string | null;
  progress: LoadProgress | null;
  error: string | null;
  /** The error's name (HubError, UnsupportedModelError, StorageQuotaError, …). */
  errorName: string | null;
  /** A short note after a cancelled load or an unload. */
  note: string | null;
  presets: PresetView[] | null;
  cache: CacheState | null;
  cacheError: string | null;
  /** The Hugging Face token (empty: none). */
  token: string;
  load(req: LoadRequest): Promise<void>;
  cancel(): Promise<void>;
  unload(): Promise<void>;
  loadPresets(): Promise<void>;
  refreshCache(): Promise<void>;
  clearCache(repo?: string): Promise<void>;
  setToken(token: string): void;
}

const TOKEN_KEY = 'webtune.hfToken.v1';

function readToken(): string {
  try {
    return localStorage.getItem(TOKEN_KEY) ?? '';
  } catch {
    return '';
  }
}

function demoSource(): ModelSourceSpec {
  const { manifest, baseUrl } = useCatalogStore.getState();
  if (!manifest) throw new Error('The demo model is not available: its manifest could not be read (see the Models list).');
  const m = manifest.model;
  return { kind: 'demo', id: m.id, name: m.name, baseUrl: new URL(`${m.path.replace(/\/+$/, '')}/`, baseUrl).href, files: m.files };
}

let attempt = 0;

export const useModelStore = create<ModelState>()((set, get) => ({
  status: 'none',
  model: null,
  loading: null,
  progress: null,
  error: null,
  errorName: null,
  note: null,
  presets: null,
  cache: null,
  cacheError: null,
  token: readToken(),

  async load(req) {
    const mine = ++attempt;
    const current = (): boolean => mine === attempt;
    set({ status: 'loading', loading: req.kind === 'demo' ? 'demo' : req.id.trim(), progress: null, error: null, errorName: null, note: null, model: null });
    try {
      const source: ModelSourceSpec =
        req.kind === 'demo'
          ? demoSource()
          : {
              kind: 'hub',
              id: req.id.trim(),
              revision: req.revision?.trim() || undefined,
              endpoint: useSettingsStore.getState().effective.hubUrl,
              token: get().token || undefined,
            };
      const summary = await trainer.loadModel(source, (p) => {
        if (current()) set({ progress: p });
      });
      if (current()) set({ status: 'loaded', model: summary, loading: null });
    } catch (e) {
      if (!current()) return;
      const name = e instanceof Error ? e.name : 'Error';
      if (name === 'AbortError') set({ status: 'none', loading: null, progress: null, note: 'Load cancelled. What was downloaded stays cached.' });
      else set({ status: 'error', loading: null, error: errorMessage(e), errorName: name });
    }
    if (current()) void get().refreshCache();
  },

  async cancel() {
    await trainer.cancelLoad();
  },

  async unload() {
    attempt++;
    await trainer.unloadModel();
    set({ status: 'none', model: null, progress: null, loading: null, note: 'Model unloaded; its GPU memory is free.' });
  },

  async loadPresets() {
    try {
      set({ presets: await trainer.presets() });
    } catch {
      // the list shows the demo and the Hub field without presets
    }
  },

  async refreshCache() {
    try {
      set({ cache: await trainer.cacheState(), cacheError: null });
    } catch (e) {
      set({ cacheError: errorMessage(e) });
    }
  },

  async clearCache(repo) {
    try {
      await trainer.clearCache(repo);
    } catch (e) {
      set({ cacheError: errorMessage(e) });
    }
    await get().refreshCache();
  },

  setToken(token) {
    const t = token.trim();
    try {
      if (t) localStorage.setItem(TOKEN_KEY, t);
      else localStorage.removeItem(TOKEN_KEY);
    } catch {
      // storage refused: the token still applies to this page
    }
    set({ token: t });
  },
}));

// A trainer worker that stops takes its model with it.
trainerWorker.subscribe((e) => {
  if (e.type === 'crashed' || (e.type === 'started' && e.generation > 1)) {
    attempt++;
    useModelStore.setState({ status: 'none', model: null, loading: null, progress: null });
  }
});

// A lost device takes the model's buffers with it.
useGpuStore.subscribe((s, prev) => {
  if (s.status === 'lost' && prev.status !== 'lost' && useModelStore.getState().status !== 'none') {
    attempt++;
    useModelStore.setState({ status: 'none', model: null, loading: null, progress: null, note: 'The GPU device was lost, and the model with it: load it again.' });
  }
});
