// window.__webtune: the client proxies, for end-to-end tests and the devtools console.
//   await __webtune.trainer.selfTest({ m: 64, n: 64, k: 64 })
//   await __webtune.data.storeProbe()
//   await __webtune.trainer.crash('die')   // the UI shows the crash banner
// The proxies are the ones the UI uses, so failures show in the UI exactly as they would there.
import type { DataApi, TrainerApi } from './api.ts';
import { data } from './data.ts';
import { trainer } from './trainer.ts';

export interface WebtuneDebugHandle {
  trainer: TrainerApi;
  data: DataApi;
}

declare global {
  interface Window {
    __webtune?: WebtuneDebugHandle;
  }
}

export function installDebugHandle(): void {
  window.__webtune = Object.freeze({ trainer, data });
}
