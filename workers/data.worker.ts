// Data worker: owns IndexedDB, files and dataset streams (later: the tokenize/pack pipeline).
// Thin: it wires src/data and src/io to the comlink API declared in src/client/api.ts.
import { createStore, del, get, set } from 'idb-keyval';
import type { DataApi, DemoManifest } from '../src/client/api.ts';
import { crash, exposeApi } from './expose.ts';

// A database of its own: idb-keyval creates one object store per database.
const probeStore = createStore('webtune-probe', 'probe');

function randomToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
}

function checkManifest(value: unknown, url: string): DemoManifest {
  const bad = (what: string) => new Error(`The demo manifest at ${url} is malformed: ${what}.`);
  if (typeof value !== 'object' || value === null) throw bad('not a JSON object');
  const m = value as Partial<DemoManifest>;
  const model = m.model;
  if (!model || typeof model.id !== 'string' || typeof model.name !== 'string' || typeof model.path !== 'string') {
    throw bad('"model" needs id, name and path');
  }
  if (!Array.isArray(model.files)) throw bad('"model.files" is not a list');
  if (typeof model.params !== 'number') throw bad('"model.params" is not a number');
  if (!Array.isArray(m.datasets)) throw bad('"datasets" is not a list');
  for (const d of m.datasets) {
    if (typeof d?.id !== 'string' || typeof d.name !== 'string' || typeof d.path !== 'string') {
      throw bad('each dataset needs id, name and path');
    }
    if (typeof d.rows !== 'number' || typeof d.bytes !== 'number') throw bad(`dataset "${d.id}" needs rows and bytes`);
  }
  return m as DemoManifest;
}

const api: DataApi = {
  async storeProbe() {
    const key = 'probe';
    const wrote = `${new Date().toISOString()} ${randomToken()}`;
    await set(key, wrote, probeStore);
    const readBack = (await get<string>(key, probeStore)) ?? '';
    await del(key, probeStore);
    return { wrote, readBack, ok: readBack === wrote };
  },

  async demoManifest(baseUrl) {
    const url = new URL('demo/manifest.json', baseUrl).href;
    let res: Response;
    try {
      res = await fetch(url, { cache: 'no-cache' });
    } catch (e) {
      throw new Error(`Could not fetch the demo manifest (${url}): ${(e as Error).message}`);
    }
    if (!res.ok) {
      throw new Error(`The demo files are missing: ${url} answered HTTP ${res.status}.`);
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      // A single-page-app server answers unknown paths with index.html.
      throw new Error(`The demo files are missing: ${url} is not JSON (the server sent something else).`);
    }
    return checkManifest(json, url);
  },

  crash: (mode) => crash('data', mode),
};

exposeApi(api);
