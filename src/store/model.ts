// The model the trainer worker holds, as the UI shows it. Loading is not wired yet: the state is
// typed so the tabs read it today and show "No model loaded".
import { create } from 'zustand';

export type ModelSource =
  | { kind: 'demo'; id: string }
  | { kind: 'hub'; repo: string; revision: string }
  | { kind: 'files'; name: string };

export interface LoadedModel {
  id: string;
  name: string;
  source: ModelSource;
  params: number;
  /** model_type from config.json, e.g. "llama". */
  architecture: string;
  quantization: 'nf4' | 'none';
}

export interface Progress {
  done: number;
  total: number;
  label: string;
}

interface ModelState {
  status: 'none' | 'loading' | 'loaded' | 'error';
  model: LoadedModel | null;
  progress: Progress | null;
  error: string | null;
}

export const useModelStore = create<ModelState>()(() => ({
  status: 'none',
  model: null,
  progress: null,
  error: null,
}));
