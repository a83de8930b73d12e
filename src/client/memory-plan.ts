// What the page plans without asking the trainer worker: the memory planner's pure functions and
// the curated presets, re-exported so the UI reaches src/engine only through src/client (DESIGN.md,
// Layers). The worker plans each preset the same way (presetViews), with the same GPU facts.
export { parseModelConfig } from '../engine/arch.ts';
export type { ModelArch } from '../engine/arch.ts';
export { planMemory } from '../engine/planner.ts';
export type { MemoryPlan, PlanSettings } from '../engine/planner.ts';
export { defaultPlanSettings, MODEL_PRESETS } from '../engine/presets.ts';
export type { ModelPreset } from '../engine/presets.ts';
