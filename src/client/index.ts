// The UI's only way to the GPU, IndexedDB and files: typed proxies to the two workers.
export type * from './api.ts';
export { RemoteError, WorkerCrashedError, errorMessage, isNoWebGPUError } from './errors.ts';
export { WorkerHandle, type WorkerEvent, type WorkerStatus } from './worker-handle.ts';
export { trainer, trainerWorker } from './trainer.ts';
export { data, dataWorker } from './data.ts';
export { openTrainBatches } from './batches.ts';
export { installDebugHandle, type WebtuneDebugHandle } from './debug.ts';
