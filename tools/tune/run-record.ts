// DIR/tune-run.json: where a run's model and data came from and how the data was prepared, written
// when training starts. `--resume` reads it for whatever is not given again, so `--out DIR --resume`
// alone continues a run (the training settings come from the checkpoint itself). Never the token.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PrepareOptions } from '../../src/data/prepare-options.ts';
import type { TuneArgs } from './args.ts';

export const RUN_RECORD_FILE = 'tune-run.json';

type Sourced = Pick<TuneArgs, 'model' | 'revision' | 'endpoint' | 'data' | 'split' | 'rows' | 'dataConfig' | 'datasetsServer'>;

export interface RunRecord extends Sourced {
  prepare: Partial<PrepareOptions>;
}

export function writeRunRecord(out: string, args: TuneArgs): void {
  const { model, revision, endpoint, data, split, rows, dataConfig, datasetsServer, prepare } = args;
  const record: RunRecord = { model, revision, endpoint, data, split, rows, dataConfig, datasetsServer, prepare };
  writeFileSync(join(out, RUN_RECORD_FILE), `${JSON.stringify(record, null, 2)}\n`);
}

export function readRunRecord(out: string): RunRecord | null {
  try {
    return JSON.parse(readFileSync(join(out, RUN_RECORD_FILE), 'utf8')) as RunRecord;
  } catch {
    return null;
  }
}

const MODEL_GROUP = ['model', 'revision', 'endpoint'] as const;
const DATA_GROUP = ['data', 'split', 'rows', 'dataConfig', 'datasetsServer'] as const;

/** The record's sources and preparation under what was given now (the command line wins). A group
 *  (model, or data with its preparation) is taken from the record only when its --model / --data
 *  is not given or names the same thing: flags that went with other data do not carry over. */
export function withRecord(args: TuneArgs, record: RunRecord | null): TuneArgs {
  if (!record) return args;
  const merged: TuneArgs = { ...args };
  const fill = (keys: readonly (keyof Sourced)[]): void => {
    for (const k of keys) if (merged[k] === undefined && record[k] !== undefined) (merged as unknown as Record<string, unknown>)[k] = record[k];
  };
  if (args.model === undefined || args.model === record.model) fill(MODEL_GROUP);
  if (args.data === undefined || args.data === record.data) {
    fill(DATA_GROUP);
    merged.prepare = { ...record.prepare, ...args.prepare };
  }
  return merged;
}
