// `--data`: the demo dataset, a file on disk (JSONL, JSON array or Parquet: read as the Data tab
// reads a dropped file), or a Hub dataset (parquet over Range, else the viewer's rows), as the
// RecordSource that preparation reads.
import { existsSync, openAsBlob, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { openFileSource } from '../../src/data/file-source.ts';
import { openHubSource } from '../../src/data/hub-source.ts';
import type { RecordSource } from '../../src/data/record-source.ts';
import type { FileLike } from '../../src/data/source.ts';
import { HubClient } from '../../src/io/hub.ts';
import { demoFiles } from './demo.ts';
import { UsageError } from './flag-values.ts';

export interface DataChoiceOptions {
  endpoint: string;
  datasetsServer?: string;
  token?: string;
  split?: string;
  rows?: number;
  config?: string;
}

const HUB_ID = /^[\w.-]+\/[\w.-]+$/;

async function fileOnDisk(path: string): Promise<FileLike & { lastModified: number }> {
  const blob = await openAsBlob(path);
  return {
    name: basename(path),
    size: blob.size,
    lastModified: Math.floor(statSync(path).mtimeMs),
    slice: (start, end) => blob.slice(start, end),
    stream: () => blob.stream() as ReadableStream<Uint8Array>,
  };
}

export async function openDataSource(arg: string, opts: DataChoiceOptions, signal?: AbortSignal): Promise<RecordSource> {
  const hubOnly = (['split', 'rows', 'config'] as const).filter((k) => opts[k] !== undefined);
  const notHub = (what: string): void => {
    if (hubOnly.length > 0) throw new UsageError(`--${hubOnly[0] === 'config' ? 'data-config' : hubOnly[0]} is for Hub datasets, not ${what}.`);
  };
  if (arg === 'demo') {
    notHub('the demo dataset');
    const { publicDir, manifest } = demoFiles();
    const d = manifest.datasets[0];
    const file = await fileOnDisk(join(publicDir, d.path));
    // The identity the data worker gives the demo, so a prepared demo means the same thing here.
    return openFileSource(file, { kind: 'demo', label: d.name, identity: `demo:${d.id}:${file.size}` });
  }
  if (/^[.~/]/.test(arg) || existsSync(arg)) {
    notHub('a file');
    const path = resolve(arg.replace(/^~(?=\/|$)/, process.env.HOME ?? '~'));
    if (!existsSync(path)) throw new UsageError(`--data ${arg}: there is no such file.`);
    if (!statSync(path).isFile()) throw new UsageError(`--data ${arg} is a folder; give a JSONL, JSON or Parquet file.`);
    return openFileSource(await fileOnDisk(path));
  }
  if (!HUB_ID.test(arg)) throw new UsageError(`--data ${arg} is neither a file nor a Hub dataset id (owner/name, e.g. mlabonne/FineTome-100k).`);
  const hub = new HubClient({ endpoint: opts.endpoint, datasetsServer: opts.datasetsServer, token: opts.token });
  return openHubSource(hub, { dataset: arg, split: opts.split ?? 'train', limit: opts.rows ?? null, config: opts.config }, { signal });
}
