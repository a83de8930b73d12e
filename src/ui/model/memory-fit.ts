// Will a model's default run fit the GPU memory budget, and if not, what to change. The planner's
// total for the default run (the figure each preset shows) against the budget; then the planner
// again over smaller batches, shorter max lengths and the smaller presets. Pure functions.
import { formatBytes } from '../../util/format.ts';
import type { GpuInfo } from '../../client/index.ts';
import { defaultPlanSettings, MODEL_PRESETS, parseModelConfig, planMemory, type ModelArch } from '../../client/memory-plan.ts';

/** What the planner reads of the GPU (as the trainer worker plans presets). */
export type PlanGpu = Pick<GpuInfo, 'f16' | 'limits'> | null;

/** Above this share of the budget a run is tight: the browser and the driver need memory too. */
export const TIGHT_SHARE = 0.9;
/** Rows per optimizer step of the default run (batch 8 x Accumulation 2). */
const ROWS_PER_STEP = 16;
const BATCHES = [4, 2, 1];
const LENGTHS = [1024, 512, 256];

export type FitLevel = 'fits' | 'tight' | 'over';

export interface FitVerdict {
  level: FitLevel;
  /** The planner's total for the default run. */
  needBytes: number;
  budgetBytes: number;
  /** One sentence: whether it fits and by how much. */
  headline: string;
  /** Changes that would fit (over) or leave room (tight), each on its own; empty when it fits. */
  changes: string[];
}

/** A preset's default-run total, for suggesting a smaller one. */
export interface PresetNeed {
  id: string;
  label: string;
  params: number;
  demo: boolean;
  needBytes: number;
}

/** The planner's total for the default run, with batch size or max length changed. */
export function runBytes(arch: ModelArch, gpu: PlanGpu, change: { batchSize?: number; seqLen?: number } = {}): number {
  const settings = { ...defaultPlanSettings(arch, gpu), ...change };
  return planMemory(arch, settings, { limits: gpu?.limits }).totalBytes;
}

export function presetNeeds(gpu: PlanGpu): PresetNeed[] {
  return MODEL_PRESETS.map((p) => {
    const arch = parseModelConfig(p.config);
    return { id: p.id, label: p.label, params: arch.params.total, demo: p.demo ?? false, needBytes: runBytes(arch, gpu) };
  });
}

const approx = (bytes: number): string => `≈ ${formatBytes(bytes)}`;

/** Single changes under `limit` bytes: the largest batch, the longest length, else both together. */
function settingChanges(arch: ModelArch, gpu: PlanGpu, limit: number): string[] {
  const base = defaultPlanSettings(arch, gpu);
  const out: string[] = [];
  const batch = BATCHES.filter((b) => b < base.batchSize).find((b) => runBytes(arch, gpu, { batchSize: b }) <= limit);
  if (batch !== undefined) {
    const accum = Math.max(1, Math.round(ROWS_PER_STEP / batch));
    out.push(
      `Batch size ${batch} in the Train tab (${approx(runBytes(arch, gpu, { batchSize: batch }))}; Accumulation ${accum} keeps ${ROWS_PER_STEP} rows per step).`,
    );
  }
  const length = LENGTHS.filter((l) => l < base.seqLen).find((l) => runBytes(arch, gpu, { seqLen: l }) <= limit);
  if (length !== undefined) {
    out.push(`Max length ${length} tokens when preparing the data in the Data tab (${approx(runBytes(arch, gpu, { seqLen: length }))}).`);
  }
  if (out.length === 0) {
    const both = LENGTHS.find((l) => runBytes(arch, gpu, { batchSize: 1, seqLen: l }) <= limit);
    if (both !== undefined) {
      out.push(
        `Batch size 1 in the Train tab and max length ${both} tokens in the Data tab (${approx(runBytes(arch, gpu, { batchSize: 1, seqLen: both }))}).`,
      );
    }
  }
  return out;
}

/** The largest preset smaller than this model that fits under `limit`. */
function smallerPreset(params: number, presets: PresetNeed[], limit: number): PresetNeed | undefined {
  return presets
    .filter((p) => !p.demo && p.params < params && p.needBytes <= limit)
    .sort((a, b) => b.params - a.params)[0];
}

/** The verdict for a model's default run; `presets` are the smaller models it may suggest. */
export function fitVerdict(arch: ModelArch, gpu: PlanGpu, budgetBytes: number, presets: PresetNeed[]): FitVerdict {
  const needBytes = runBytes(arch, gpu);
  const budget = formatBytes(budgetBytes);
  const verdict = (level: FitLevel, headline: string, changes: string[] = []): FitVerdict => ({ level, needBytes, budgetBytes, headline, changes });

  if (needBytes > budgetBytes) {
    // Suggestions that leave room first; ones that only just fit when nothing else does.
    const roomy = TIGHT_SHARE * budgetBytes;
    const changes = settingChanges(arch, gpu, roomy);
    if (changes.length === 0) changes.push(...settingChanges(arch, gpu, budgetBytes));
    const smaller = smallerPreset(arch.params.total, presets, roomy) ?? smallerPreset(arch.params.total, presets, budgetBytes);
    if (smaller) changes.push(`A smaller model: ${smaller.label} (${approx(smaller.needBytes)}).`);
    if (changes.length === 0) {
      const least = runBytes(arch, gpu, { batchSize: 1, seqLen: LENGTHS[LENGTHS.length - 1] });
      changes.push(
        `A smaller model: even batch size 1 at ${LENGTHS[LENGTHS.length - 1]} tokens needs ${approx(least)} with this one (or set the GPU memory higher, if this GPU has more).`,
      );
    }
    return verdict(
      'over',
      `Will not fit: the default run needs ${approx(needBytes)}, ${formatBytes(needBytes - budgetBytes)} more than the ${budget} of GPU memory set in the GPU section.`,
      changes,
    );
  }
  if (needBytes > TIGHT_SHARE * budgetBytes) {
    const share = Math.round((100 * needBytes) / budgetBytes);
    return verdict(
      'tight',
      `Tight: the default run needs ${approx(needBytes)} of the ${budget} set in the GPU section (${share}%), and the browser and the driver need memory too.`,
      settingChanges(arch, gpu, TIGHT_SHARE * budgetBytes),
    );
  }
  return verdict('fits', `Fits: the default run needs ${approx(needBytes)} of the ${budget} set in the GPU section.`);
}

/** Verdicts of every preset, by id. */
export function presetVerdicts(gpu: PlanGpu, budgetBytes: number): Map<string, FitVerdict> {
  const needs = presetNeeds(gpu);
  return new Map(MODEL_PRESETS.map((p) => [p.id, fitVerdict(parseModelConfig(p.config), gpu, budgetBytes, needs)]));
}

/** The planner's lines without its "GPU memory unknown" verdict: the Model tab now has a budget. */
export function planLinesWithBudget(lines: string[]): string[] {
  return lines.filter((l) => !l.startsWith('GPU memory unknown'));
}
