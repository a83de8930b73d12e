// The contract between the UI thread and the two workers. The workers implement these interfaces
// (workers/*.worker.ts check themselves against them with `import type`); the UI reaches them
// only through the proxies in this folder (trainer.ts, data.ts), never through a raw comlink
// Remote. Every method returns a Promise; a function argument is passed to the worker as a
// comlink proxy (the client wraps it), so the worker can call it back.
import type { GpuInfo, NoWebGPUReason } from '../engine/gpu.ts';
import type { MatmulCheck } from '../engine/selftest.ts';

export type { GpuInfo, NoWebGPUReason, MatmulCheck };

export type WorkerName = 'trainer' | 'data';

export type CrashMode = 'throw' | 'die';

/** Why the GPU device went away (GPUDeviceLostInfo, made cloneable). */
export interface DeviceLost {
  reason: string;
  message: string;
}

export interface SelfTestOptions {
  m?: number;
  n?: number;
  k?: number;
}

export interface TrainerApi {
  /** Creates the GPU device once (later calls return the same facts); rejects with a
   *  RemoteError named 'NoWebGPUError' (with `reason`) when WebGPU is missing or refused. */
  init(): Promise<GpuInfo>;
  /** One line for people: "GPU: …, f16: yes, subgroups: yes, max buffer: 4.0 GiB" (describeGpu). */
  describe(): Promise<string>;
  /** `cb` is called once per device loss. */
  onDeviceLost(cb: (lost: DeviceLost) => void): Promise<void>;
  /** A small matmul on the GPU compared with a float64 CPU reference (default 100×70×37). */
  selfTest(opts?: SelfTestOptions): Promise<MatmulCheck>;
  /** Destroys the GPU device, so that the device-lost path can be tested. */
  loseDevice(): Promise<void>;
  /** For testing failure handling: 'throw' rejects this call; 'die' throws an uncaught error in
   *  the worker's global scope right after the call returns (the Worker's 'error' event fires). */
  crash(mode: CrashMode): Promise<void>;
}

export interface StoreProbe {
  wrote: string;
  readBack: string;
  ok: boolean;
}

export interface DemoModelEntry {
  id: string;
  name: string;
  /** Relative to the app's base URL, e.g. "demo/model". */
  path: string;
  files: { path: string; size: number }[];
  params: number;
}

export interface DemoDatasetEntry {
  id: string;
  name: string;
  /** Relative to the app's base URL, e.g. "demo/data/sort-words.jsonl". */
  path: string;
  format: string;
  rows: number;
  bytes: number;
}

/** public/demo/manifest.json */
export interface DemoManifest {
  model: DemoModelEntry;
  datasets: DemoDatasetEntry[];
}

export interface DataApi {
  /** Writes a random value to IndexedDB from the worker, reads it back, deletes it. */
  storeProbe(): Promise<StoreProbe>;
  /** Fetches `${baseUrl}demo/manifest.json`; `baseUrl` is the app's absolute base URL. */
  demoManifest(baseUrl: string): Promise<DemoManifest>;
  crash(mode: CrashMode): Promise<void>;
}

/**
 * How a worker sends an error back. comlink's own error transfer keeps only name, message and
 * stack; the workers throw this plain object instead, so fields such as NoWebGPUError's `reason`
 * survive, and the client turns it back into a RemoteError.
 */
export interface WireError {
  webtuneError: true;
  name: string;
  message: string;
  reason?: string;
  stack?: string;
}

export function isWireError(value: unknown): value is WireError {
  return typeof value === 'object' && value !== null && (value as WireError).webtuneError === true;
}
