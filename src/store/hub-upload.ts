// The Export tab's upload of the trained adapter to the Hub: the repo, the private switch, and the
// one upload's progress and outcome. The token is the Model tab's (model store); the Hub's address
// the settings' (a mock Hub in tests).
import { create } from 'zustand';
import { errorMessage, trainer } from '../client/index.ts';
import type { HubUploadProgress, HubUploadResult } from '../io/hub-upload.ts';
import { cardFacts } from './export.ts';
import { useModelStore } from './model.ts';
import { useSettingsStore } from './settings.ts';

export type UploadStatus = 'idle' | 'running' | 'done' | 'error';

interface HubUploadState {
  repo: string;
  private: boolean;
  status: UploadStatus;
  progress: HubUploadProgress | null;
  result: HubUploadResult | null;
  error: string | null;
  setRepo(repo: string): void;
  setPrivate(on: boolean): void;
  upload(): Promise<void>;
}

export const useHubUploadStore = create<HubUploadState>()((set, get) => ({
  repo: '',
  private: true,
  status: 'idle',
  progress: null,
  result: null,
  error: null,
  setRepo: (repo) => set({ repo }),
  setPrivate: (on) => set({ private: on }),

  async upload() {
    const s = get();
    if (s.status === 'running') return;
    const repo = s.repo.trim();
    const token = useModelStore.getState().token;
    if (!repo) return set({ status: 'error', error: 'Enter a repo name: "name" (under your user) or "owner/name".' });
    if (!token) return set({ status: 'error', error: 'Uploading needs a Hugging Face token with the "write" role: enter it in the Model tab (Hugging Face token), then upload again.' });
    set({ status: 'running', progress: null, result: null, error: null });
    try {
      const result = await trainer.uploadAdapter({ repo, token, private: s.private, hubUrl: useSettingsStore.getState().effective.hubUrl, card: cardFacts() }, (p) => set({ progress: p }));
      set({ status: 'done', result });
    } catch (e) {
      set({ status: 'error', error: errorMessage(e) });
    }
  },
}));
