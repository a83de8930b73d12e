// The trainer worker (GPU device, model, training) behind a typed, restartable proxy.
import * as Comlink from 'comlink';
import type { TrainBatchPorts, TrainerApi } from './api.ts';
import { WorkerHandle, type MethodList } from './worker-handle.ts';

const methods: MethodList<TrainerApi> = {
  init: true,
  describe: true,
  onDeviceLost: true,
  selfTest: true,
  loseDevice: true,
  crash: true,
  loadModel: true,
  cancelLoad: true,
  unloadModel: true,
  currentModel: true,
  presets: true,
  cacheState: true,
  clearCache: true,
  generate: true,
  cancelGenerate: true,
  train: true,
  stopTraining: true,
  pauseTraining: true,
  resumeTraining: true,
  checkpointInfo: true,
  discardCheckpoint: true,
  trainDefaults: true,
  exportOptions: true,
  exportModel: true,
  cancelExport: true,
  exportRunBundle: true,
  uploadAdapter: true,
};

export const trainerWorker = new WorkerHandle<TrainerApi>(
  'trainer',
  () => new Worker(new URL('../../workers/trainer.worker.ts', import.meta.url), { type: 'module', name: 'trainer' }),
  methods,
);

/** The batch ports move to the trainer worker (a MessagePort cannot be copied). */
const transferred = (b: TrainBatchPorts): TrainBatchPorts => Comlink.transfer(b, [b.train, b.validation]);

/** Use this, not a raw Worker: calls reject (never hang) if the worker dies. */
export const trainer: TrainerApi = Object.freeze({
  ...trainerWorker.api,
  train: (dataset, settings, onMetrics, batches) => trainerWorker.api.train(dataset, settings, onMetrics, transferred(batches)),
  resumeTraining: (onMetrics, batches) => trainerWorker.api.resumeTraining(onMetrics, transferred(batches)),
} satisfies TrainerApi);
