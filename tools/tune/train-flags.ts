// Every Train-tab setting (TrainSettings, src/engine/train/loop.ts) as a kebab-case flag. The table
// is typed over all of TrainSettings' keys, so a setting added there without a flag here (or a flag
// for a setting that is gone) fails the type check: the flags cannot drift from the settings.
import { LINEAR_NAMES } from '../../src/engine/arch.ts';
import { DEFAULT_TRAIN_SETTINGS, type TrainSettings } from '../../src/engine/train/loop.ts';
import { checkValue, kebab, parseValue, UsageError, type ValueKind } from './flag-values.ts';

export type TrainKey = keyof TrainSettings;

interface TrainFlag {
  kind: ValueKind;
  help: string;
}

const pos = { type: 'int', min: 1 } as const;
const count = { type: 'int', min: 0 } as const;

export const TRAIN_FLAGS: { [K in TrainKey]-?: TrainFlag } = {
  loraR: { kind: pos, help: 'LoRA rank r' },
  loraAlpha: { kind: { type: 'number', above: 0 }, help: 'LoRA alpha (scaling alpha/r, or alpha/sqrt(r) with rsLoRA)' },
  rslora: { kind: { type: 'bool' }, help: 'rank-stabilised LoRA (--no-rslora to turn off)' },
  targets: { kind: { type: 'list', values: LINEAR_NAMES }, help: 'the linears that get LoRA' },
  loraDropout: { kind: { type: 'number', min: 0, below: 1 }, help: "dropout on the LoRA path's input while training" },
  learningRate: { kind: { type: 'number', above: 0 }, help: 'peak learning rate' },
  schedule: { kind: { type: 'enum', values: ['linear', 'cosine', 'constant'] }, help: 'learning-rate schedule after warmup' },
  warmupSteps: { kind: count, help: 'warmup steps (wins over --warmup-ratio)' },
  warmupRatio: { kind: { type: 'number', min: 0, max: 1 }, help: 'warmup as a share of the steps, when --warmup-steps is not set' },
  batchSize: { kind: pos, help: 'packed rows per micro-batch' },
  gradAccum: { kind: pos, help: 'micro-batches per optimizer step' },
  epochs: { kind: pos, help: 'passes over the training rows (--max-steps wins)' },
  maxSteps: { kind: pos, help: 'optimizer steps of the run' },
  optimizer: { kind: { type: 'enum', values: ['adamw', 'adamw_8bit'] }, help: 'AdamW with 32-bit or 8-bit (blockwise) states' },
  min8bitSize: { kind: count, help: 'with adamw_8bit, tensors smaller than this keep 32-bit states (default 4096)' },
  weightDecay: { kind: { type: 'number', min: 0 }, help: 'decoupled weight decay' },
  maxGradNorm: { kind: { type: 'number', min: 0 }, help: 'global gradient-norm clipping (0: off)' },
  seed: { kind: { type: 'int', min: 0, max: 0xffffffff }, help: 'LoRA init and dropout seed' },
  maxSkippedInARow: { kind: pos, help: 'stop after this many non-finite steps in a row (default 5)' },
  checkpointEvery: { kind: count, help: 'a checkpoint every N steps (0: only at the end)' },
  evalEvery: { kind: count, help: 'eval loss on the validation split every N steps (0: only at the end)' },
  earlyStoppingPatience: { kind: count, help: 'stop after N evals without a lower eval loss (0: never)' },
};

export const TRAIN_KEYS = Object.keys(TRAIN_FLAGS) as TrainKey[];

/** "--learning-rate" for learningRate. */
export function trainFlagName(key: TrainKey): string {
  return `--${kebab(key)}`;
}

const BY_FLAG = new Map(TRAIN_KEYS.map((k) => [trainFlagName(k), k]));

/** The setting a flag sets ("--lora-r" -> loraR), or undefined. */
export function trainKeyOfFlag(flag: string): TrainKey | undefined {
  return BY_FLAG.get(flag);
}

export function isTrainKey(key: string): key is TrainKey {
  return Object.hasOwn(TRAIN_FLAGS, key);
}

/** A flag's text value as the setting's type. */
export function parseTrainFlag(key: TrainKey, raw: string): unknown {
  return parseValue(TRAIN_FLAGS[key].kind, raw, trainFlagName(key));
}

/** A settings object from JSON (a config file), each key checked; `where` names the file. */
export function checkTrainSettings(value: unknown, where: string): Partial<TrainSettings> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new UsageError(`${where}: the training settings must be a JSON object.`);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (!isTrainKey(k)) throw new UsageError(`${where}: "${k}" is not a training setting (they are ${TRAIN_KEYS.join(', ')}).`);
    if (v === null || v === undefined) continue; // unset: the default applies
    out[k] = checkValue(TRAIN_FLAGS[k].kind, v, `${where}: ${k}`);
  }
  return out as Partial<TrainSettings>;
}

/** The default shown in --help, when the recipe has one. */
export function trainDefault(key: TrainKey): string | null {
  const v = DEFAULT_TRAIN_SETTINGS[key];
  if (v === undefined) return null;
  return Array.isArray(v) ? v.join(',') : String(v);
}

/**
 * The settings of a run: `given` (config, then flags) over `base` (the recipe, or a checkpoint's).
 * Warmup is counted one way: a ratio given without steps unsets the base's warmup steps, which
 * would otherwise win over it (schedule.ts), and both at once is refused.
 */
export function trainSettingsFrom(base: TrainSettings, given: Partial<TrainSettings>): TrainSettings {
  const steps = given.warmupSteps !== undefined;
  const ratio = given.warmupRatio !== undefined;
  if (steps && ratio) throw new UsageError(`${trainFlagName('warmupSteps')} and ${trainFlagName('warmupRatio')} are both given: warmup is counted in steps or as a ratio, not both.`);
  const settings: TrainSettings = { ...base, ...given };
  if (ratio) settings.warmupSteps = undefined;
  return settings;
}
