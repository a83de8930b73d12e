// Results of the checks in the Model tab's diagnostics: the GPU matmul self-test (trainer worker)
// and the IndexedDB round trip (data worker).
import { create } from 'zustand';
import {
  data,
  errorMessage,
  trainer,
  type MatmulCheck,
  type SelfTestOptions,
  type StoreProbe,
} from '../client/index.ts';

export type CheckStatus = 'idle' | 'running' | 'done' | 'failed';

export interface Check<T> {
  status: CheckStatus;
  result: T | null;
  error: string | null;
}

const idle = { status: 'idle', result: null, error: null } as const;

interface DiagnosticsState {
  selfTest: Check<MatmulCheck>;
  storage: Check<StoreProbe>;
  runSelfTest(opts?: SelfTestOptions): Promise<void>;
  checkStorage(): Promise<void>;
}

export const SELF_TEST_SIZE: Required<SelfTestOptions> = { m: 100, n: 70, k: 37 };

export const useDiagnosticsStore = create<DiagnosticsState>()((set) => ({
  selfTest: idle,
  storage: idle,

  async runSelfTest(opts = SELF_TEST_SIZE) {
    set({ selfTest: { status: 'running', result: null, error: null } });
    try {
      const result = await trainer.selfTest(opts);
      set({ selfTest: { status: 'done', result, error: null } });
    } catch (e) {
      set({ selfTest: { status: 'failed', result: null, error: errorMessage(e) } });
    }
  },

  async checkStorage() {
    set({ storage: { status: 'running', result: null, error: null } });
    try {
      const result = await data.storeProbe();
      set({ storage: { status: 'done', result, error: null } });
    } catch (e) {
      set({ storage: { status: 'failed', result: null, error: errorMessage(e) } });
    }
  },
}));
