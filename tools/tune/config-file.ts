// `--config run.json`: training settings from a file. Two shapes are read: the Train tab's saved
// form (src/store/run.ts: { overrides, length, warmup }, read as its effectiveSettings reads it),
// and a plain settings object ({ "loraR": 16, "maxSteps": 30, … }). Every key is checked as a flag
// would be.
import { readFileSync } from 'node:fs';
import type { TrainSettings } from '../../src/engine/train/loop.ts';
import { UsageError } from './flag-values.ts';
import { checkTrainSettings } from './train-flags.ts';

/** The Train tab's default run length when a person picks "max steps" without a number. */
const TAB_DEFAULT_MAX_STEPS = 100;
/** …and its warmup ratio when a person picks "ratio" without a number. */
const TAB_DEFAULT_WARMUP_RATIO = 0.03;

export function readConfigFile(path: string): Partial<TrainSettings> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new UsageError(`--config ${path} cannot be read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}.`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`--config ${path} is not JSON: ${(e as Error).message}.`);
  }
  return settingsFromConfig(json, path);
}

export function settingsFromConfig(json: unknown, where: string): Partial<TrainSettings> {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new UsageError(`${where}: expected a JSON object of training settings.`);
  if (!('overrides' in json)) return checkTrainSettings(json, where);
  // The Train tab's form: the changes over the recipe, whether epochs or max steps end the run,
  // and whether warmup is counted in steps or as a ratio.
  const { overrides, length, warmup, ...rest } = json as { overrides: unknown; length?: unknown; warmup?: unknown };
  const extra = Object.keys(rest);
  if (extra.length > 0) throw new UsageError(`${where}: unexpected "${extra[0]}" next to "overrides" (the Train tab saves overrides, length and warmup).`);
  const settings = checkTrainSettings(overrides, `${where}: overrides`);
  if (length === 'epochs') delete settings.maxSteps;
  else if (length === 'maxSteps') settings.maxSteps ??= TAB_DEFAULT_MAX_STEPS;
  else if (length !== undefined) throw new UsageError(`${where}: length wants "epochs" or "maxSteps", got ${JSON.stringify(length)}.`);
  if (warmup === 'ratio') {
    // Explicitly unset: the recipe's warmupSteps would otherwise win over the ratio.
    settings.warmupSteps = undefined;
    settings.warmupRatio ??= TAB_DEFAULT_WARMUP_RATIO;
  } else if (warmup === 'steps') delete settings.warmupRatio;
  else if (warmup !== undefined) throw new UsageError(`${where}: warmup wants "steps" or "ratio", got ${JSON.stringify(warmup)}.`);
  return settings;
}
