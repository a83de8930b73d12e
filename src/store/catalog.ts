// The embedded demo (public/demo/manifest.json: a tiny model and small datasets), fetched by the
// data worker. Later: Hub search results live in react-query, not here.
import { create } from 'zustand';
import { data, errorMessage, type DemoManifest } from '../client/index.ts';

export type CatalogStatus = 'idle' | 'loading' | 'ready' | 'missing';

interface CatalogState {
  status: CatalogStatus;
  manifest: DemoManifest | null;
  /** Why the demo is not available (missing files, bad JSON, worker failure). */
  error: string | null;
  /** The app's absolute base URL; the demo paths are relative to it. */
  baseUrl: string;
  load(): Promise<void>;
}

let attempt = 0;

export const useCatalogStore = create<CatalogState>()((set, get) => ({
  status: 'idle',
  manifest: null,
  error: null,
  baseUrl: new URL(import.meta.env.BASE_URL, location.href).href,

  async load() {
    const mine = ++attempt;
    set({ status: 'loading', error: null });
    try {
      const manifest = await data.demoManifest(get().baseUrl);
      if (mine === attempt) set({ status: 'ready', manifest });
    } catch (e) {
      if (mine === attempt) set({ status: 'missing', manifest: null, error: errorMessage(e) });
    }
  },
}));
