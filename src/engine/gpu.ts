// The one place a GPUDevice comes from: navigator.gpu in a browser or worker, Dawn (npm `webgpu`)
// in Node. It asks for the adapter's real limits and the optional features the engine uses, and
// chooses the numeric mode (f16 storage or f32) once, here.
import { formatBytes } from '../util/format.ts';

/** Optional features the engine uses when the adapter has them. */
const WANTED_FEATURES = [
  'shader-f16',
  'subgroups',
  'timestamp-query',
  'chromium-experimental-subgroup-matrix',
] as const;

/** Limits raised to the adapter's maximum (the defaults are far too small for LLM weights). */
const WANTED_LIMITS = [
  'maxBufferSize',
  'maxStorageBufferBindingSize',
  'maxStorageBuffersPerShaderStage',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupsPerDimension',
] as const;

/** Dawn toggles for Node: expose f16 and subgroup matrices on NVIDIA under Vulkan (DESIGN.md), and
 * full-resolution GPU timestamps (quantized by default: on the H200 they came back as a few
 * significant bits of nanoseconds, e.g. 2^17 ns, which made benchmark timings coarse). */
const DAWN_FLAGS = [
  'enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia',
  'disable-dawn-features=timestamp_quantization',
];

/** Dawn's flags plus WEBTUNE_DAWN_ENABLE (comma-separated toggles), for benchmark experiments only. */
function dawnFlags(): string[] {
  const extra = typeof process !== 'undefined' ? process.env?.WEBTUNE_DAWN_ENABLE : undefined;
  return extra ? [`${DAWN_FLAGS[0]},${extra}`, ...DAWN_FLAGS.slice(1)] : DAWN_FLAGS;
}

export type GpuLimits = Record<(typeof WANTED_LIMITS)[number], number>;

export interface GpuInfo {
  vendor: string;
  architecture: string;
  description: string;
  /** Every feature the device was created with. */
  features: string[];
  limits: GpuLimits;
  /** The numeric mode chosen at creation: f16 storage with f32 accumulation, or f32 throughout. */
  f16: boolean;
  subgroups: boolean;
  timestamps: boolean;
  subgroupMatrix: boolean;
  /** Subgroup matrices with the f16 x f16 -> f32 16x16x16 config, on subgroups of exactly 32: what
   * the tensor-core kernels (src/engine/matmul-mma.ts) are written for. */
  mmaF16: boolean;
  /** 'browser' (navigator.gpu) or 'node' (Dawn). */
  runtime: 'browser' | 'node';
}

export interface Gpu {
  device: GPUDevice;
  info: GpuInfo;
  /** Called once if the device is lost (driver reset, tab backgrounded too long, destroy()). */
  onLost(listener: (reason: string, message: string) => void): void;
}

export type NoWebGPUReason = 'no-api' | 'no-adapter' | 'device-failed';

/** WebGPU is missing or refused; `message` says what to do about it. */
export class NoWebGPUError extends Error {
  constructor(
    readonly reason: NoWebGPUReason,
    message: string,
  ) {
    super(message);
    this.name = 'NoWebGPUError';
  }
}

export interface GpuOptions {
  /** Allow the f16-storage path where the adapter has shader-f16 (default true). */
  allowF16?: boolean;
  powerPreference?: GPUPowerPreference;
}

/** Dawn's GPU object for Node: held for the life of the process, as a collected instance takes
 * its devices down with it (seen as native crashes mid-dispatch). */
let dawnGpu: GPU | undefined;

async function gpuEntryPoint(): Promise<{ gpu: GPU; runtime: GpuInfo['runtime'] }> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu) return { gpu: nav.gpu, runtime: 'browser' };
  const isNode = typeof process !== 'undefined' && !!process.versions?.node;
  if (!isNode) {
    throw new NoWebGPUError(
      'no-api',
      'This browser has no WebGPU. Use Chrome or Edge 113 or newer (desktop), or Safari 26; ' +
        'in Firefox enable dom.webgpu.enabled. If you use Chrome already, check chrome://gpu ' +
        'for "WebGPU: Hardware accelerated" and turn on hardware acceleration in the settings.',
    );
  }
  const name = 'webgpu'; // a variable keeps bundlers from pulling Dawn into the browser build
  const dawn = (await import(/* @vite-ignore */ name)) as {
    create(flags: string[]): GPU;
    globals: Record<string, unknown>;
  };
  Object.assign(globalThis, dawn.globals);
  dawnGpu ??= dawn.create(dawnFlags());
  return { gpu: dawnGpu, runtime: 'node' };
}

export async function getGpu(options: GpuOptions = {}): Promise<Gpu> {
  const { gpu, runtime } = await gpuEntryPoint();
  const adapter = await gpu.requestAdapter({ powerPreference: options.powerPreference ?? 'high-performance' });
  if (!adapter) {
    throw new NoWebGPUError(
      'no-adapter',
      'WebGPU is present but no GPU adapter is available: the GPU may be blocklisted or ' +
        'hardware acceleration turned off. Open chrome://gpu to see why, update the GPU driver, ' +
        'or start Chrome with --enable-unsafe-webgpu.',
    );
  }
  const requiredFeatures = WANTED_FEATURES.filter((f) => adapter.features.has(f)) as GPUFeatureName[];
  const requiredLimits: Record<string, number> = {};
  for (const name of WANTED_LIMITS) requiredLimits[name] = adapter.limits[name];

  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ requiredFeatures, requiredLimits });
  } catch (e) {
    throw new NoWebGPUError('device-failed', `The GPU refused to create a device: ${(e as Error).message}`);
  }

  const limits = {} as GpuLimits;
  for (const name of WANTED_LIMITS) limits[name] = device.limits[name];
  const has = (f: string) => device.features.has(f);
  const info: GpuInfo = {
    vendor: adapter.info.vendor,
    architecture: adapter.info.architecture,
    description: adapter.info.description,
    features: [...device.features].sort(),
    limits,
    f16: (options.allowF16 ?? true) && has('shader-f16'),
    subgroups: has('subgroups'),
    timestamps: has('timestamp-query'),
    subgroupMatrix: has('chromium-experimental-subgroup-matrix'),
    mmaF16: has('chromium-experimental-subgroup-matrix') && has('shader-f16') && hasMmaF16Config(adapter.info),
    runtime,
  };

  const listeners: ((reason: string, message: string) => void)[] = [];
  void device.lost.then((lost) => {
    for (const l of listeners) l(lost.reason, lost.message);
  });
  return { device, info, onLost: (l) => void listeners.push(l) };
}

/** Dawn's adapter info lists the subgroup-matrix shapes the GPU offers (not yet in @webgpu/types). */
interface SubgroupMatrixInfo {
  subgroupMinSize?: number;
  subgroupMaxSize?: number;
  subgroupMatrixConfigs?: { componentType: string; resultComponentType: string; M: number; N: number; K: number }[];
}

function hasMmaF16Config(adapterInfo: GPUAdapterInfo): boolean {
  const info = adapterInfo as GPUAdapterInfo & SubgroupMatrixInfo;
  if (info.subgroupMinSize !== 32 || info.subgroupMaxSize !== 32) return false;
  return (info.subgroupMatrixConfigs ?? []).some(
    (c) => c.componentType === 'f16' && c.resultComponentType === 'f32' && c.M === 16 && c.N === 16 && c.K === 16,
  );
}

/** One line for people: "GPU: nvidia hopper, f16: yes, max buffer: 64.0 GiB". */
export function describeGpu(info: GpuInfo): string {
  const name = [info.vendor, info.architecture, info.description].filter(Boolean).join(' ') || 'unknown adapter';
  const yes = (b: boolean) => (b ? 'yes' : 'no');
  return `GPU: ${name}, f16: ${yes(info.f16)}, subgroups: ${yes(info.subgroups)}, max buffer: ${formatBytes(info.limits.maxBufferSize)}`;
}

