// One invocation of the runner, after parsing: which kind of run it is (train, or export a saved
// adapter), the checks on how the flags go together, and the settings every run shares.
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { openModelFiles, type ModelFiles } from '../../src/io/model-source.ts';
import type { TuneArgs } from './args.ts';
import { UsageError } from './flag-values.ts';
import { chooseModel, type ModelChoice } from './model-choice.ts';
import type { Output } from './output.ts';
import { readRunRecord, withRecord } from './run-record.ts';
import { exportSavedAdapter } from './adapter-run.ts';
import { checkPush } from './push.ts';
import { trainRun, type RunOutcome } from './train-run.ts';

export const DEFAULT_ENDPOINT = 'https://huggingface.co';

/** What every kind of run needs, resolved once. */
export interface RunSetup {
  args: TuneArgs;
  outDir: string;
  cacheDir: string;
  endpoint: string;
  /** $HF_TOKEN, never written anywhere. */
  token?: string;
  model: ModelChoice;
  files: ModelFiles;
  out: Output;
  signal: AbortSignal;
}

function checkUrl(url: string, flag: string): string {
  try {
    const u = new URL(url);
    if (u.protocol === 'http:' || u.protocol === 'https:') return url.replace(/\/+$/, '');
  } catch {
    // said below
  }
  throw new UsageError(`${flag} wants an http(s) URL such as https://huggingface.co, got "${url}".`);
}

/** The checks on flags that only make sense together (or never do). */
function checkCombination(args: TuneArgs): void {
  if (!args.out) throw new UsageError('--out DIR is required: checkpoints go to DIR/checkpoints and exports into DIR.');
  if (args.adapter !== undefined) {
    if (args.bundle) throw new UsageError('--export bundle writes the bundle of a training run (its prepared data and settings): with --adapter there is none; leave bundle out.');
    if (args.exports.length === 0) throw new UsageError('--adapter DIR exports a saved adapter: say what to write with --export (e.g. --export gguf:q4_k_m).');
    if (args.resume) throw new UsageError('--adapter exports without training; --resume continues a training run. Use one or the other.');
    if (args.data !== undefined) throw new UsageError('--adapter exports without training, so --data is not used; leave it out.');
    const trainFlags = Object.keys(args.train);
    if (trainFlags.length > 0 || args.configFile) throw new UsageError('--adapter exports without training, so training settings (--config and training flags) are not used; leave them out.');
    if (!args.model) throw new UsageError('--adapter needs --model: the base model the adapter was trained on.');
    return;
  }
  if (!args.model) throw new UsageError(`--model is required: a Hub id (owner/name), a local model folder, or demo${args.resume ? ` (${args.out}/tune-run.json would name it, but there is none)` : ''}.`);
  if (!args.data) throw new UsageError(`--data is required: a JSONL/JSON/Parquet file, a Hub dataset id, or demo${args.resume ? ` (${args.out}/tune-run.json would name it, but there is none)` : ''}.`);
}

export async function runTune(given: TuneArgs, out: Output, signal: AbortSignal): Promise<RunOutcome> {
  if (!given.out) checkCombination(given);
  const outDir = resolve(given.out!);
  // A resumed run takes what was not given again from the first run's record.
  const args = given.resume ? withRecord(given, readRunRecord(outDir)) : given;
  checkCombination(args);
  const endpoint = checkUrl(args.endpoint ?? DEFAULT_ENDPOINT, '--endpoint');
  if (args.datasetsServer !== undefined) checkUrl(args.datasetsServer, '--datasets-server');
  const cacheDir = resolve(args.cacheDir ?? join(homedir(), '.cache', 'webtune'));
  const token = process.env.HF_TOKEN || undefined;
  checkPush(args, token);
  const model = chooseModel(args.model!, { endpoint, revision: args.revision, token, cacheDir });
  out.say(`Model: ${model.describe}`);
  const files = await openModelFiles(model.spec, { cache: model.cache, fetch: model.fetch });
  if (files.offline) out.say('The Hub could not be reached: using the cached listing of the model.');
  const setup: RunSetup = { args, outDir, cacheDir, endpoint, token, model, files, out, signal };
  return args.adapter !== undefined ? exportSavedAdapter(setup) : trainRun(setup);
}
