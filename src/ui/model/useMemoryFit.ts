// The GPU memory budget and the presets' verdicts against it, recomputed only when the GPU facts
// or the budget change (the planner runs a few dozen closed formulas per preset).
import { useMemo } from 'react';
import { useGpuStore } from '../../store/gpu.ts';
import { gpuBudget, type GpuBudget } from './gpu-budget.ts';
import { presetVerdicts, type FitVerdict } from './memory-fit.ts';

/** navigator.deviceMemory: system memory in GB, capped by browsers (Chromium only). */
const deviceMemoryGb = (): number | undefined => (navigator as { deviceMemory?: number }).deviceMemory;

export function useGpuBudget(): GpuBudget {
  const memoryGb = useGpuStore((s) => s.memoryGb);
  const info = useGpuStore((s) => s.info);
  return useMemo(() => gpuBudget(memoryGb, info, deviceMemoryGb()), [memoryGb, info]);
}

/** By preset id; null until the GPU facts are known (presets are planned against them). */
export function usePresetVerdicts(): Map<string, FitVerdict> | null {
  const info = useGpuStore((s) => s.info);
  const { bytes } = useGpuBudget();
  return useMemo(() => (info ? presetVerdicts(info, bytes) : null), [info, bytes]);
}
