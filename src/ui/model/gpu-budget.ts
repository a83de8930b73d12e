// The GPU memory the Model tab plans against. WebGPU reports no memory size (only per-buffer
// limits), so: the value a person set, else a guess from the adapter's name where that name has
// one memory size, else system memory for software GPUs, else a common size. Pure functions.
import type { GpuInfo } from '../../client/index.ts';
import { GPU_MEMORY_GB_RANGE, isGpuMemoryGb } from '../../store/gpu.ts';

/** GB as GPU makers count them. */
export const GIB = 1024 ** 3;
/** The most common size of a consumer GPU; a guess when nothing better is known. */
export const DEFAULT_GPU_MEMORY_GB = 8;

export type BudgetSource = 'set' | 'detected' | 'default';

export interface GpuBudget {
  gb: number;
  bytes: number;
  source: BudgetSource;
  /** Where the number comes from, for people. */
  note: string;
}

/** Adapter names that come with one memory size (most names come in several). */
const KNOWN_GPUS: readonly [RegExp, number][] = [
  [/\bH200\b/i, 141],
  [/\bH100 NVL\b/i, 94],
  [/\bH100\b/i, 80],
  [/\bL40S?\b/i, 48],
  [/\bRTX 6000 Ada\b/i, 48],
  [/\bRTX A6000\b/i, 48],
  [/\bRTX 5090\b/i, 32],
  [/\bRTX 4090\b/i, 24],
  [/\bRTX 3090\b/i, 24],
  [/\bRTX 5080\b/i, 16],
  [/\bRTX 4080\b/i, 16],
];

const SOFTWARE = /swiftshader|llvmpipe|lavapipe|software/i;

type AdapterNames = Pick<GpuInfo, 'vendor' | 'architecture' | 'description'>;

/**
 * What can be told of the memory from the adapter: a known name, or a software GPU (it uses system
 * memory: `deviceMemoryGb` is navigator.deviceMemory, which browsers cap at 8).
 */
export function detectGpuMemory(info: AdapterNames | null, deviceMemoryGb?: number): { gb: number; note: string } | null {
  if (!info) return null;
  const names = `${info.description} ${info.architecture} ${info.vendor}`;
  for (const [pattern, gb] of KNOWN_GPUS) {
    const m = info.description.match(pattern);
    if (m) return { gb, note: `detected from the GPU's name (${m[0]})` };
  }
  if (SOFTWARE.test(names) && isGpuMemoryGb(deviceMemoryGb)) {
    return { gb: deviceMemoryGb, note: `a software GPU using system memory; this browser reports at least ${deviceMemoryGb} GB` };
  }
  return null;
}

export function gpuBudget(setGb: number | null, info: AdapterNames | null, deviceMemoryGb?: number): GpuBudget {
  const make = (gb: number, source: BudgetSource, note: string): GpuBudget => ({ gb, bytes: Math.round(gb * GIB), source, note });
  if (setGb !== null) return make(setGb, 'set', 'set by you, saved in this browser');
  const detected = detectGpuMemory(info, deviceMemoryGb);
  if (detected) return make(detected.gb, 'detected', detected.note);
  const shared = info?.vendor.toLowerCase() === 'apple' ? ' Apple GPUs share the system memory: about three quarters of it is usable.' : '';
  return make(DEFAULT_GPU_MEMORY_GB, 'default', `assumed: WebGPU does not report GPU memory, so set yours.${shared}`);
}

/** The GB field's text as a number, or a sentence saying what is accepted. */
export function parseGpuMemoryGb(text: string): { ok: true; gb: number } | { ok: false; error: string } {
  const t = text.trim().replace(',', '.');
  const gb = t === '' ? NaN : Number(t);
  if (!isGpuMemoryGb(gb)) {
    return { ok: false, error: `Enter the GPU memory in GB, a number from ${GPU_MEMORY_GB_RANGE.min} to ${GPU_MEMORY_GB_RANGE.max} (e.g. 8 or 24).` };
  }
  return { ok: true, gb };
}

/** "8 GB", "0.5 GB". */
export const formatGb = (gb: number): string => `${Number(gb.toFixed(2))} GB`;
