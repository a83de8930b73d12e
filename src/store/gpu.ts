// What the UI knows about the GPU: the trainer worker's device facts, WebGPU being unavailable,
// or the device having been lost. The device itself lives in the trainer worker. Also the GPU
// memory a person says this GPU has: WebGPU reports none, and the Model tab judges plans against it.
import { create } from 'zustand';
import {
  errorMessage,
  isNoWebGPUError,
  trainer,
  trainerWorker,
  type DeviceLost,
  type GpuInfo,
} from '../client/index.ts';
import { deletePersisted, loadPersisted, savePersisted } from './persist.ts';

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
  /** GPU memory in GB (1024³ bytes) a person set; null: detected or the default. Kept in IndexedDB. */
  memoryGb: number | null;
  /** Starts the trainer worker if needed and creates the GPU device there. */
  init(): Promise<void>;
  /** The page itself has no navigator.gpu: no worker is started. */
  markUnsupported(u: Unsupported): void;
  /** null forgets the person's value. */
  setMemoryGb(gb: number | null): void;
}

/** The GPU memory values accepted, in GB. */
export const GPU_MEMORY_GB_RANGE = Object.freeze({ min: 0.25, max: 4096 });

export const isGpuMemoryGb = (gb: unknown): gb is number =>
  typeof gb === 'number' && Number.isFinite(gb) && gb >= GPU_MEMORY_GB_RANGE.min && gb <= GPU_MEMORY_GB_RANGE.max;

const MEMORY_KEY = 'gpu-memory-gb.v1';
/** Set once a person saves a value on this page: a stored one that arrives later must not undo it. */
let memoryDecided = false;

let attempt = 0;

export const useGpuStore = create<GpuState>()((set) => ({
  status: 'idle',
  info: null,
  summary: null,
  unsupported: null,
  lost: null,
  error: null,
  memoryGb: null,

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

  setMemoryGb(gb) {
    if (gb !== null && !isGpuMemoryGb(gb)) return;
    memoryDecided = true;
    set({ memoryGb: gb });
    // storage refused: the value still applies to this page
    if (gb === null) void deletePersisted(MEMORY_KEY);
    else void savePersisted(MEMORY_KEY, gb);
  },
}));

void loadPersisted<unknown>(MEMORY_KEY).then((gb) => {
  if (!memoryDecided && isGpuMemoryGb(gb)) useGpuStore.setState({ memoryGb: gb });
});

// A trainer worker that stops takes its device with it.
trainerWorker.subscribe((e) => {
  if (e.type === 'crashed') {
    attempt++;
    useGpuStore.setState({ status: 'error', error: 'The trainer worker stopped; restart it to use the GPU again.' });
  }
});
