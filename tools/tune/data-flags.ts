// The Data tab's preparation options (PrepareOptions, src/data/prepare-options.ts) as flags, typed
// over its keys like the training flags. Three differ from a plain kebab-case of the key, as the
// Data tab shows them: the split is a percentage, the seed is --data-seed (--seed is LoRA's), and
// a custom template comes from a file. The column mapping is always detected, as the tab does
// before a person edits it.
import { readFileSync } from 'node:fs';
import { DEFAULT_PREPARE_OPTIONS, type PrepareOptions } from '../../src/data/prepare-options.ts';
import { kebab, parseValue, UsageError, type ValueKind } from './flag-values.ts';

export type PrepareKey = Exclude<keyof PrepareOptions, 'mapping'>;

interface DataFlag {
  /** Default: --kebab-case of the key. */
  flag?: string;
  kind: ValueKind;
  help: string;
  /** The option's value from the flag's (default: the same). */
  toOption?: (v: unknown) => unknown;
  /** Shown in --help (default: the option's default). */
  shownDefault?: string;
}

export const DATA_FLAGS: { [K in PrepareKey]-?: DataFlag } = {
  template: { kind: { type: 'enum', values: ['chatml', 'llama3', 'mistral', 'alpaca', 'model', 'custom'] }, help: 'chat template the examples are rendered with' },
  templateSource: {
    flag: '--template-file',
    kind: { type: 'string' },
    help: 'a Jinja chat template file (implies --template custom)',
    toOption: (path) => readTemplateFile(path as string),
  },
  trainOnResponsesOnly: { kind: { type: 'bool' }, help: 'loss on the assistant turns only (--no-train-on-responses-only: on every token)' },
  maxSeqLength: { kind: { type: 'int', min: 16, max: 131072 }, help: 'tokens per packed row' },
  overflow: { kind: { type: 'enum', values: ['truncate', 'drop'] }, help: 'longer examples are cut or skipped' },
  packing: { kind: { type: 'bool' }, help: 'several examples per row (--no-packing: one each)' },
  validationFraction: {
    flag: '--validation-percent',
    kind: { type: 'number', min: 0, max: 50 },
    help: 'share of the records held out for eval loss, in percent',
    toOption: (p) => (p as number) / 100,
    shownDefault: '0',
  },
  seed: { flag: '--data-seed', kind: { type: 'int', min: 0, max: 0xffffffff }, help: 'seed of the validation split and the packing order' },
  shardTokens: { kind: { type: 'int', min: 1 }, help: 'tokens per stored shard', shownDefault: String(2 ** 21) },
};

export const DATA_KEYS = Object.keys(DATA_FLAGS) as PrepareKey[];

export function dataFlagName(key: PrepareKey): string {
  return DATA_FLAGS[key].flag ?? `--${kebab(key)}`;
}

const BY_FLAG = new Map(DATA_KEYS.map((k) => [dataFlagName(k), k]));

export function dataKeyOfFlag(flag: string): PrepareKey | undefined {
  return BY_FLAG.get(flag);
}

/** A flag's text as the option's value (a template file is read here: a missing file fails now). */
export function parseDataFlag(key: PrepareKey, raw: string): unknown {
  const spec = DATA_FLAGS[key];
  const v = parseValue(spec.kind, raw, dataFlagName(key));
  return spec.toOption ? spec.toOption(v) : v;
}

export function dataDefault(key: PrepareKey): string | null {
  const spec = DATA_FLAGS[key];
  if (spec.shownDefault !== undefined) return spec.shownDefault;
  const v = (DEFAULT_PREPARE_OPTIONS as Partial<PrepareOptions>)[key];
  return v === undefined || v === null ? null : String(v);
}

/** The options a preparation runs with: the Data tab's defaults, then what was given. */
export function prepareOptions(given: Partial<PrepareOptions>): PrepareOptions {
  const o: PrepareOptions = { ...DEFAULT_PREPARE_OPTIONS, ...given };
  if (given.templateSource !== undefined && given.template === undefined) o.template = 'custom';
  if (o.template === 'custom' && !o.templateSource) throw new UsageError('--template custom needs --template-file FILE (the Jinja source).');
  if (o.template !== 'custom' && given.templateSource !== undefined) throw new UsageError(`--template-file is for --template custom, not ${o.template}.`);
  return o;
}

function readTemplateFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new UsageError(`--template-file ${path} cannot be read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}.`);
  }
}
