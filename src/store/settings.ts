// Settings a person can change: where the Hub and the dataset viewer live. Saved in IndexedDB
// (persist.ts; settings only, never tokens). The first render uses what an earlier version left in
// localStorage, then the stored values arrive a moment later, unless the person saved first.
// `?hub=<url>&datasets=<url>` in the page address overrides them for this page only, without
// saving, so that a shared link cannot quietly redirect later Hub traffic; tests use it to point
// the app at a local mock Hub.
import { create } from 'zustand';
import { loadPersisted, savePersisted } from './persist.ts';

export interface Settings {
  hubUrl: string;
  datasetsUrl: string;
}

export const DEFAULT_SETTINGS: Readonly<Settings> = Object.freeze({
  hubUrl: 'https://huggingface.co',
  datasetsUrl: 'https://datasets-server.huggingface.co',
});

const STORAGE_KEY = 'settings.v1';
/** Where earlier versions kept them (read once, then moved to IndexedDB). */
const LEGACY_KEY = 'webtune.settings.v1';
const QUERY_KEYS: Record<keyof Settings, string> = { hubUrl: 'hub', datasetsUrl: 'datasets' };

/** An absolute http(s) URL without a trailing slash; throws a message for people otherwise. */
export function normalizeBaseUrl(input: string): string {
  const text = input.trim();
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error(`"${text}" is not a URL (example: https://huggingface.co).`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new Error(`"${text}" must start with https:// or http://.`);
  }
  return url.href.replace(/\/+$/, '');
}

/** Valid saved values, the defaults for anything missing or malformed. */
function cleanSaved(parsed: Partial<Settings> | undefined): Settings {
  if (!parsed || typeof parsed !== 'object') return { ...DEFAULT_SETTINGS };
  const pick = (key: keyof Settings) => {
    try {
      return typeof parsed[key] === 'string' ? normalizeBaseUrl(parsed[key]) : DEFAULT_SETTINGS[key];
    } catch {
      return DEFAULT_SETTINGS[key];
    }
  };
  return { hubUrl: pick('hubUrl'), datasetsUrl: pick('datasetsUrl') };
}

/** What an earlier version saved in localStorage, for the first render. */
function loadLegacy(): Settings {
  try {
    const raw = localStorage.getItem(LEGACY_KEY);
    return cleanSaved(raw ? (JSON.parse(raw) as Partial<Settings>) : undefined);
  } catch {
    return { ...DEFAULT_SETTINGS };
  }
}

function readQuery(): { values: Partial<Settings>; problems: string[] } {
  const values: Partial<Settings> = {};
  const problems: string[] = [];
  const params = new URLSearchParams(location.search);
  for (const key of Object.keys(QUERY_KEYS) as (keyof Settings)[]) {
    const raw = params.get(QUERY_KEYS[key]);
    if (raw === null) continue;
    try {
      values[key] = normalizeBaseUrl(raw);
    } catch (e) {
      problems.push(`?${QUERY_KEYS[key]}= ignored: ${(e as Error).message}`);
    }
  }
  return { values, problems };
}

interface SettingsState {
  /** What is saved (IndexedDB). */
  saved: Settings;
  /** Values from the page address, used instead of the saved ones on this page. */
  fromQuery: Partial<Settings>;
  queryProblems: string[];
  /** What the app uses: saved values, overridden by the page address. */
  effective: Settings;
  panelOpen: boolean;
  /** Validates, saves, and drops the page-address overrides (a person's choice wins). */
  save(next: Settings): { ok: true } | { ok: false; error: string };
  reset(): void;
  setPanelOpen(open: boolean): void;
}

/** Set once a person saves or resets: values read later from storage must not undo that. */
let decided = false;

function persist(s: Settings): void {
  decided = true;
  // storage refused (private mode, quota): the values still apply to this page
  void savePersisted(STORAGE_KEY, s);
}

const initialSaved = loadLegacy();
const initialQuery = readQuery();

export const useSettingsStore = create<SettingsState>()((set) => ({
  saved: initialSaved,
  fromQuery: initialQuery.values,
  queryProblems: initialQuery.problems,
  effective: { ...initialSaved, ...initialQuery.values },
  panelOpen: false,

  save(next) {
    let clean: Settings;
    try {
      clean = { hubUrl: normalizeBaseUrl(next.hubUrl), datasetsUrl: normalizeBaseUrl(next.datasetsUrl) };
    } catch (e) {
      return { ok: false, error: (e as Error).message };
    }
    persist(clean);
    set({ saved: clean, fromQuery: {}, queryProblems: [], effective: clean });
    return { ok: true };
  },

  reset() {
    const clean = { ...DEFAULT_SETTINGS };
    persist(clean);
    set({ saved: clean, fromQuery: {}, queryProblems: [], effective: clean });
  },

  setPanelOpen(open) {
    set({ panelOpen: open });
  },
}));

void loadPersisted<Partial<Settings>>(STORAGE_KEY, LEGACY_KEY).then((stored) => {
  if (decided || stored === undefined) return;
  const saved = cleanSaved(stored);
  useSettingsStore.setState((s) => ({ saved, effective: { ...saved, ...s.fromQuery } }));
});
