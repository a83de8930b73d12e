// The state of the two workers as the UI shows it: running or crashed, and the last error (a call
// that threw, or the worker dying). restart() gives a fresh worker behind the same proxy and
// brings back what the UI had from it (the GPU device, the demo catalog).
import { create } from 'zustand';
import { dataWorker, trainerWorker, type WorkerEvent, type WorkerName, type WorkerStatus } from '../client/index.ts';
import { useCatalogStore } from './catalog.ts';
import { useGpuStore } from './gpu.ts';

export interface WorkerProblem {
  /** 'call': a method rejected, the worker still runs; 'crash': the worker stopped. */
  kind: 'call' | 'crash';
  method: string | null;
  message: string;
  /** Date.now() when it happened. */
  at: number;
}

export interface WorkerView {
  status: WorkerStatus;
  generation: number;
  problem: WorkerProblem | null;
}

type WorkersState = Record<WorkerName, WorkerView> & {
  restart(name: WorkerName): Promise<void>;
  dismiss(name: WorkerName): void;
};

const handles = { trainer: trainerWorker, data: dataWorker } as const;

/** Calls whose failure the UI already shows where it happened (GPU panel, demo lists,
 *  diagnostics); a failure of any other call, and every crash, gets the worker's banner. */
const SHOWN_IN_CONTEXT: Record<WorkerName, ReadonlySet<string>> = {
  trainer: new Set(['init', 'describe', 'onDeviceLost', 'selfTest', 'loadModel', 'cancelLoad', 'unloadModel', 'presets', 'cacheState', 'clearCache', 'train', 'stopTraining', 'trainDefaults', 'generate', 'cancelGenerate', 'exportOptions', 'exportModel', 'cancelExport']),
  data: new Set(['demoManifest', 'storeProbe', 'inspect', 'preview', 'prepare', 'resumePrepared', 'cancel', 'listPrepared', 'deletePrepared', 'hubSplits', 'tokenizerFacts']),
};

/** What a fresh worker has to do again so the UI shows what it showed before. */
const afterStart: Record<WorkerName, () => Promise<void>> = {
  trainer: () => useGpuStore.getState().init(),
  data: () => useCatalogStore.getState().load(),
};

export const useWorkersStore = create<WorkersState>()((set) => ({
  trainer: { status: 'idle', generation: 0, problem: null },
  data: { status: 'idle', generation: 0, problem: null },

  async restart(name) {
    handles[name].restart();
    await afterStart[name]();
  },

  dismiss(name) {
    set((s) => ({ [name]: { ...s[name], problem: null } }) as Partial<WorkersState>);
  },
}));

function onEvent(e: WorkerEvent): void {
  const handle = handles[e.worker];
  const view = (problem: WorkerProblem | null): WorkerView => ({
    status: handle.status,
    generation: handle.generation,
    problem,
  });
  const state = useWorkersStore.getState();
  switch (e.type) {
    case 'started':
      useWorkersStore.setState({ [e.worker]: view(null) });
      break;
    case 'crashed':
      useWorkersStore.setState({
        [e.worker]: view({ kind: 'crash', method: null, message: e.message, at: Date.now() }),
      });
      break;
    case 'call-failed':
      if (e.generation !== handle.generation || SHOWN_IN_CONTEXT[e.worker].has(e.method)) return;
      useWorkersStore.setState({
        [e.worker]: view(
          state[e.worker].problem?.kind === 'crash'
            ? state[e.worker].problem
            : { kind: 'call', method: e.method, message: e.error.message, at: Date.now() },
        ),
      });
      break;
  }
}

trainerWorker.subscribe(onEvent);
dataWorker.subscribe(onEvent);
