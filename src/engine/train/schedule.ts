// Learning-rate schedules as transformers defines them (optimization.py: get_linear_schedule_with_
// warmup, get_cosine_schedule_with_warmup, get_constant_schedule_with_warmup), as the multiplier
// LambdaLR applies to the base lr at scheduler step s (0-based: the lr of the (s+1)-th optimizer
// step). Warmup as steps, or as a ratio of the total (transformers' get_warmup_steps: ceil).

export type ScheduleKind = 'linear' | 'cosine' | 'constant';

export interface ScheduleSpec {
  kind: ScheduleKind;
  /** Optimizer steps of the whole run. */
  totalSteps: number;
  /** Warmup steps; wins over warmupRatio. */
  warmupSteps?: number;
  /** Warmup as a fraction of totalSteps (ceil), when warmupSteps is absent. */
  warmupRatio?: number;
  /** Cosine: transformers' num_cycles (default 0.5: from 1 down to 0 along half a cosine). */
  cycles?: number;
}

/** The warmup steps of a spec: warmupSteps, else ceil(totalSteps · warmupRatio), else 0. */
export function warmupSteps(spec: ScheduleSpec): number {
  if (spec.warmupSteps !== undefined) return spec.warmupSteps;
  if (spec.warmupRatio !== undefined) return Math.ceil(spec.totalSteps * spec.warmupRatio);
  return 0;
}

/** LambdaLR's multiplier at scheduler step s (0-based). */
export function lrLambda(spec: ScheduleSpec, s: number): number {
  const w = warmupSteps(spec);
  const T = spec.totalSteps;
  if (s < w) return s / Math.max(1, w);
  switch (spec.kind) {
    case 'constant':
      return 1;
    case 'linear':
      return Math.max(0, (T - s) / Math.max(1, T - w));
    case 'cosine': {
      const progress = (s - w) / Math.max(1, T - w);
      const cycles = spec.cycles ?? 0.5;
      return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * cycles * 2 * progress)));
    }
  }
}

/** A schedule as the step sees it: the lr of scheduler step s (0-based). */
export type LrSchedule = (s: number) => number;

/** base lr times transformers' multiplier. */
export function lrSchedule(baseLr: number, spec: ScheduleSpec): LrSchedule {
  return (s) => baseLr * lrLambda(spec, s);
}
