// The prepared (templated, tokenized, packed) dataset the data worker holds, as the UI shows it.
// Preparation is not wired yet: the state is typed so the tabs show "No dataset prepared".
import { create } from 'zustand';
import type { Progress } from './model.ts';

export interface PreparedDataset {
  id: string;
  name: string;
  source: { kind: 'demo'; id: string } | { kind: 'hub'; repo: string; split: string } | { kind: 'file'; name: string };
  /** 'sharegpt' | 'openai' | 'alpaca' | 'text' */
  format: string;
  records: number;
  tokens: number;
  packedRows: number;
  max_seq_length: number;
  template: string;
}

interface DatasetState {
  status: 'none' | 'preparing' | 'ready' | 'error';
  dataset: PreparedDataset | null;
  progress: Progress | null;
  error: string | null;
}

export const useDatasetStore = create<DatasetState>()(() => ({
  status: 'none',
  dataset: null,
  progress: null,
  error: null,
}));
