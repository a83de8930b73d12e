// The data worker (IndexedDB, files, datasets, demo manifest) behind a typed, restartable proxy.
import * as Comlink from 'comlink';
import type { DataApi } from './api.ts';
import { WorkerHandle, type MethodList } from './worker-handle.ts';

const methods: MethodList<DataApi> = {
  storeProbe: true,
  demoManifest: true,
  crash: true,
  inspect: true,
  preview: true,
  prepare: true,
  resumePrepared: true,
  cancel: true,
  listPrepared: true,
  openPrepared: true,
  readShard: true,
  serveBatches: true,
  deletePrepared: true,
  hubSplits: true,
  bundleRecords: true,
  tokenizerFacts: true,
};

export const dataWorker = new WorkerHandle<DataApi>(
  'data',
  () => new Worker(new URL('../../workers/data.worker.ts', import.meta.url), { type: 'module', name: 'data' }),
  methods,
);

/** Use this, not a raw Worker: calls reject (never hang) if the worker dies. A port given to
 *  serveBatches is transferred to the data worker (a MessagePort cannot be copied). */
export const data: DataApi = Object.freeze({
  ...dataWorker.api,
  serveBatches: (fingerprint, split, port) => dataWorker.api.serveBatches(fingerprint, split, Comlink.transfer(port, [port])),
} satisfies DataApi);
