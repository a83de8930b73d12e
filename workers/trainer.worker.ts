// Trainer worker: owns the GPU device (and later the model and the training loop). Thin: it wires
// src/engine to the comlink API declared in src/client/api.ts.
import { describeGpu, getGpu, type Gpu } from '../src/engine/gpu.ts';
import { matmulSelfTest } from '../src/engine/selftest.ts';
import type { DeviceLost, SelfTestOptions, TrainerApi } from '../src/client/api.ts';
import { crash, exposeApi } from './expose.ts';

let gpuPromise: Promise<Gpu> | null = null;
const lostListeners = new Set<(lost: DeviceLost) => void>();

/** The device, created on first use; a failed creation or a lost device is retried next time. */
function gpu(): Promise<Gpu> {
  if (!gpuPromise) {
    const p = getGpu().then((g) => {
      g.onLost((reason, message) => {
        if (gpuPromise === p) gpuPromise = null;
        for (const listener of lostListeners) {
          try {
            listener({ reason, message });
          } catch {
            // the page side of a callback may be gone; nothing to do
          }
        }
      });
      return g;
    });
    p.catch(() => {
      if (gpuPromise === p) gpuPromise = null;
    });
    gpuPromise = p;
  }
  return gpuPromise;
}

const api: TrainerApi = {
  async init() {
    return (await gpu()).info;
  },
  async describe() {
    return describeGpu((await gpu()).info);
  },
  async onDeviceLost(cb) {
    lostListeners.add(cb);
  },
  async selfTest(opts: SelfTestOptions = {}) {
    const { m = 100, n = 70, k = 37 } = opts;
    return matmulSelfTest(await gpu(), { m, n, k });
  },
  async loseDevice() {
    if (gpuPromise) (await gpuPromise).device.destroy();
  },
  crash: (mode) => crash('trainer', mode),
};

exposeApi(api);
