// The runner's command line: `--flag value`, `--flag=value`, and for true/false flags `--flag`,
// `--no-flag` or `--flag=false`. Three groups: the run's own flags (model, data, output), the data
// preparation flags (data-flags.ts) and the training flags (train-flags.ts). Only what was given
// is recorded; defaults are applied later, because a resumed run takes its checkpoint's settings.
import type { PrepareOptions } from '../../src/data/prepare-options.ts';
import type { TrainSettings } from '../../src/engine/train/loop.ts';
import { readConfigFile } from './config-file.ts';
import { DATA_FLAGS, DATA_KEYS, dataFlagName, dataKeyOfFlag, parseDataFlag } from './data-flags.ts';
import { parseExportList, type BundleLayout, type ExportSpec } from './export-specs.ts';
import { describeKind, parseValue, UsageError, type ValueKind } from './flag-values.ts';
import { parseTrainFlag, TRAIN_FLAGS, TRAIN_KEYS, trainFlagName, trainKeyOfFlag } from './train-flags.ts';

export interface TuneArgs {
  help: boolean;
  /** Hub id, a local folder, or "demo". */
  model?: string;
  endpoint?: string;
  revision?: string;
  cacheDir?: string;
  /** A file, a Hub dataset id, or "demo". */
  data?: string;
  split?: string;
  rows?: number;
  dataConfig?: string;
  datasetsServer?: string;
  configFile?: string;
  /** The config file's settings with the flags' over them (explicit ones only). */
  train: Partial<TrainSettings>;
  /** Preparation options given as flags (explicit ones only). */
  prepare: Partial<PrepareOptions>;
  out?: string;
  resume: boolean;
  exports: ExportSpec[];
  /** `--export bundle` / `bundle:folder`: the run bundle, next to the exports. */
  bundle: BundleLayout | null;
  /** `--push-to-hub REPO`: upload the export there ($HF_TOKEN, --endpoint). */
  pushToHub?: string;
  /** A repo --push-to-hub creates is private. */
  private?: boolean;
  /** A saved PEFT adapter folder to export from, without training. */
  adapter?: string;
  /** `--quantizer`: where GGUF k-quants run (default auto: the GPU unless it is a software one). */
  quantizer?: QuantizerChoice;
}

export type QuantizerChoice = 'auto' | 'gpu' | 'pool';

type RunKey = 'model' | 'endpoint' | 'revision' | 'cacheDir' | 'data' | 'split' | 'rows' | 'dataConfig' | 'datasetsServer' | 'configFile' | 'out' | 'resume' | 'exports' | 'adapter' | 'pushToHub' | 'private' | 'quantizer' | 'help';

interface RunFlag {
  key: RunKey;
  /** What the value is, in --help ("ID|DIR|demo"); absent for true/false flags. */
  value?: string;
  kind: ValueKind;
  help: string;
}

/** The run's own flags, in the order --help lists them. */
export const RUN_FLAGS: Record<string, RunFlag> = {
  '--model': { key: 'model', value: 'ID|DIR|demo', kind: { type: 'string' }, help: 'Hub model id, a local folder (config.json, safetensors, tokenizer), or demo' },
  '--revision': { key: 'revision', value: 'REV', kind: { type: 'string' }, help: 'Hub branch, tag or commit of the model (default main)' },
  '--endpoint': { key: 'endpoint', value: 'URL', kind: { type: 'string' }, help: 'Hub base URL (default https://huggingface.co); the token is $HF_TOKEN' },
  '--cache-dir': { key: 'cacheDir', value: 'DIR', kind: { type: 'string' }, help: 'downloaded models and prepared datasets (default ~/.cache/webtune)' },
  '--data': { key: 'data', value: 'FILE|ID|demo', kind: { type: 'string' }, help: 'JSONL/JSON/Parquet file, Hub dataset id, or demo' },
  '--split': { key: 'split', value: 'NAME', kind: { type: 'string' }, help: 'split of a Hub dataset (default train)' },
  '--rows': { key: 'rows', value: 'N', kind: { type: 'int', min: 1 }, help: 'only the first N rows of a Hub dataset' },
  '--data-config': { key: 'dataConfig', value: 'NAME', kind: { type: 'string' }, help: 'config (subset) of a Hub dataset (default: the first with the split)' },
  '--datasets-server': { key: 'datasetsServer', value: 'URL', kind: { type: 'string' }, help: 'dataset viewer base URL (default https://datasets-server.huggingface.co)' },
  '--config': { key: 'configFile', value: 'FILE', kind: { type: 'string' }, help: "training settings as JSON (the Train tab's saved form, or a settings object); flags win" },
  '--out': { key: 'out', value: 'DIR', kind: { type: 'string' }, help: 'output folder: checkpoints in DIR/checkpoints, exports in DIR' },
  '--resume': { key: 'resume', kind: { type: 'bool' }, help: 'continue the run in DIR/checkpoints (a larger --max-steps extends it)' },
  '--export': { key: 'exports', value: 'LIST', kind: { type: 'string' }, help: 'after training: adapter, adapter:zip, merged, merged:f16, gguf:q4_k_m, gguf:q8_0, …, bundle (run bundle .zip for accelerate/Axolotl), bundle:folder' },
  '--push-to-hub': { key: 'pushToHub', value: 'REPO', kind: { type: 'string' }, help: 'upload the export (adapter, merged or one GGUF) with a model card to this Hub repo ("name" or "owner/name"); token $HF_TOKEN' },
  '--private': { key: 'private', kind: { type: 'bool' }, help: 'a repo --push-to-hub creates is private' },
  '--adapter': { key: 'adapter', value: 'DIR', kind: { type: 'string' }, help: 'export this saved PEFT adapter folder instead of training' },
  '--quantizer': { key: 'quantizer', value: 'auto|gpu|pool', kind: { type: 'enum', values: ['auto', 'gpu', 'pool'] }, help: 'where GGUF Q4_K/Q5_K/Q6_K/Q8_0 quantization runs: the GPU, the CPU worker pool, or auto (the GPU unless it is a software one, e.g. lavapipe)' },
  '--help': { key: 'help', kind: { type: 'bool' }, help: 'this list' },
};

const BOOL_WORDS = new Set(['true', 'false', '1', '0', 'yes', 'no', 'on', 'off']);

/** Every flag the runner knows, for suggestions. */
export function allFlags(): string[] {
  return [...Object.keys(RUN_FLAGS), ...DATA_KEYS.map(dataFlagName), ...TRAIN_KEYS.map(trainFlagName)];
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length];
}

function unknownFlag(flag: string): UsageError {
  const best = allFlags()
    .map((f) => ({ f, d: editDistance(flag, f) }))
    .sort((x, y) => x.d - y.d)[0];
  const hint = best && best.d <= 3 ? ` Did you mean ${best.f}?` : '';
  return new UsageError(`Unknown flag ${flag}.${hint} (--help lists them.)`);
}

/** The kind of value a flag takes, and where its value goes. */
function lookup(flag: string): { kind: ValueKind; set: (args: TuneArgs, raw: string) => void } | null {
  if (flag === '-h') flag = '--help';
  const run = RUN_FLAGS[flag];
  if (run) {
    return {
      kind: run.kind,
      set: (args, raw) => {
        if (run.key === 'exports') ({ specs: args.exports, bundle: args.bundle } = parseExportList(raw));
        else (args as unknown as Record<string, unknown>)[run.key] = parseValue(run.kind, raw, flag);
      },
    };
  }
  const dk = dataKeyOfFlag(flag);
  if (dk) return { kind: DATA_FLAGS[dk].kind, set: (args, raw) => void ((args.prepare as Record<string, unknown>)[dk] = parseDataFlag(dk, raw)) };
  const tk = trainKeyOfFlag(flag);
  if (tk) return { kind: TRAIN_FLAGS[tk].kind, set: (args, raw) => void ((args.train as Record<string, unknown>)[tk] = parseTrainFlag(tk, raw)) };
  return null;
}

/** Parses argv (without node and the script). Throws a UsageError naming the flag at fault. */
export function parseArgs(argv: readonly string[]): TuneArgs {
  const args: TuneArgs = { help: false, train: {}, prepare: {}, resume: false, exports: [], bundle: null };
  const flagTrain: Partial<TrainSettings> = {};
  args.train = flagTrain;
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i];
    if (!token.startsWith('-') || token === '-' || token === '--') throw new UsageError(`Unexpected "${token}": every value follows its flag (--help lists them).`);
    const eq = token.indexOf('=');
    let flag = eq > 0 ? token.slice(0, eq) : token;
    let inline: string | undefined = eq > 0 ? token.slice(eq + 1) : undefined;
    let spec = lookup(flag);
    // --no-packing, --no-rslora: a true/false flag set to false.
    if (!spec && flag.startsWith('--no-')) {
      const positive = lookup(`--${flag.slice(5)}`);
      if (positive?.kind.type === 'bool') {
        if (inline !== undefined) throw new UsageError(`${flag} takes no value.`);
        spec = positive;
        flag = `--${flag.slice(5)}`;
        inline = 'false';
      }
    }
    if (!spec) throw unknownFlag(flag);
    let raw: string;
    if (inline !== undefined) raw = inline;
    else if (spec.kind.type === 'bool') {
      const next = argv[i + 1];
      raw = next !== undefined && BOOL_WORDS.has(next.toLowerCase()) ? argv[++i] : 'true';
    } else {
      const next = argv[i + 1];
      if (next === undefined || (next.startsWith('--') && lookup(next.split('=')[0]) !== null)) throw new UsageError(`${flag} needs a value (${describeFlagValue(flag)}).`);
      raw = argv[++i];
    }
    spec.set(args, raw);
  }
  // The config file's settings under the flags': flags win wherever both say something, the way
  // warmup is counted included (a --warmup-steps flag replaces the file's ratio, and back).
  if (args.configFile) {
    const fromFile = readConfigFile(args.configFile);
    if (flagTrain.warmupSteps !== undefined) delete fromFile.warmupRatio;
    if (flagTrain.warmupRatio !== undefined) delete fromFile.warmupSteps;
    args.train = { ...fromFile, ...flagTrain };
  }
  return args;
}

function describeFlagValue(flag: string): string {
  const run = RUN_FLAGS[flag];
  if (run?.value) return run.value;
  const spec = lookup(flag);
  return spec ? describeKind(spec.kind) : 'a value';
}
