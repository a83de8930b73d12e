// What the UI knows about the GPU: the trainer worker's device facts, WebGPU being unavailable,
// or the device having been lost. The device itself lives in the trainer worker.
import { create } from 'zustand';
import {
  errorMessage,
  isNoWebGPUError,
  trainer,
  trainerWorker,
  type DeviceLost,
  type GpuInfo,
} from '../client/index.ts';

export type GpuStatus = 'idle' | 'starting' | 'ready' | 'lost' | 'unsupported' | 'error';

export interface Unsupported {
  /** NoWebGPUError's reason: 'no-api' | 'no-adapter' | 'device-failed'. */
  reason: string;
  message: string;
}

interface GpuState {
  status: GpuStatus;
  info: GpuInfo | null;
  /** describeGpu's line, made in the worker: "GPU: …, f16: yes, …, max buffer: …". */
  summary: string | null;
  unsupported: Unsupported | null;
  lost: DeviceLost | null;
  error: string | null;
  /** Starts the trainer worker if needed and creates the GPU device there. */
  init(): Promise<void>;
  /** The page itself has no navigator.gpu: no worker is started. */
  markUnsupported(u: Unsupported): void;
}

let attempt = 0;

export const useGpuStore = create<GpuState>()((set) => ({
  status: 'idle',
  info: null,
  summary: null,
  unsupported: null,
  lost: null,
  error: null,

  async init() {
    const mine = ++attempt;
    const current = () => mine === attempt;
    set({ status: 'starting', error: null, lost: null });
    try {
      const info = await trainer.init();
      const summary = await trainer.describe();
      await trainer.onDeviceLost((lost) => {
        if (current()) set({ status: 'lost', lost });
      });
      if (current()) set({ status: 'ready', info, summary });
    } catch (e) {
      if (!current()) return;
      if (isNoWebGPUError(e)) {
        set({ status: 'unsupported', unsupported: { reason: e.reason, message: e.message } });
      } else {
        set({ status: 'error', error: errorMessage(e) });
      }
    }
  },

  markUnsupported(u) {
    set({ status: 'unsupported', unsupported: u });
  },
}));

// A trainer worker that stops takes its device with it.
trainerWorker.subscribe((e) => {
  if (e.type === 'crashed') {
    attempt++;
    useGpuStore.setState({ status: 'error', error: 'The trainer worker stopped; restart it to use the GPU again.' });
  }
});
