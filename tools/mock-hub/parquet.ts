// The refs/convert/parquet branch of a dataset: its configs/splits, and its rows read with hyparquet.
import { readFileSync, statSync } from 'node:fs';
import { parquetMetadata, parquetReadObjects, parquetSchema } from 'hyparquet';
import type { SchemaTree } from 'hyparquet';
import type { Repo, RepoFile } from './repos.ts';

export const PARQUET_BRANCH = 'refs/convert/parquet';

export interface SplitFiles {
  config: string;
  split: string;
  /** Folder name on the branch: the split, or `partial-{split}` when only part was converted. */
  dir: string;
  partial: boolean;
  files: RepoFile[];
}

/** `{config}/{split}/NNNN.parquet` files of the parquet branch, grouped and ordered. */
export function parquetSplits(repo: Repo): SplitFiles[] | undefined {
  const rev = repo.revisions.get(PARQUET_BRANCH);
  if (!rev) return undefined;
  const byKey = new Map<string, SplitFiles>();
  for (const f of rev.files) {
    const m = f.path.match(/^([^/]+)\/([^/]+)\/[^/]+\.parquet$/);
    if (!m) continue;
    const [, config, dir] = m;
    const partial = dir.startsWith('partial-');
    const split = partial ? dir.slice('partial-'.length) : dir;
    const key = `${config}\0${split}`;
    let entry = byKey.get(key);
    if (!entry) byKey.set(key, (entry = { config, split, dir, partial, files: [] }));
    entry.files.push(f);
  }
  // The viewer lists train, validation, test first, like `datasets` does.
  const rank = (split: string): number => {
    const i = ['train', 'validation', 'test'].indexOf(split);
    return i < 0 ? 3 : i;
  };
  return [...byKey.values()].sort((a, b) =>
    a.config !== b.config ? (a.config < b.config ? -1 : 1) : rank(a.split) - rank(b.split) || (a.split < b.split ? -1 : 1),
  );
}

type Feature = Record<string, unknown>;

function leafDtype(tree: SchemaTree): string {
  const e = tree.element;
  const logical = e.logical_type?.type;
  switch (e.type) {
    case 'BOOLEAN':
      return 'bool';
    case 'INT32':
      return e.converted_type === 'DATE' ? 'date32' : 'int32';
    case 'INT64':
      return e.converted_type?.startsWith('TIMESTAMP') || logical === 'TIMESTAMP' ? 'timestamp[ms]' : 'int64';
    case 'FLOAT':
      return 'float32';
    case 'DOUBLE':
      return 'float64';
    case 'BYTE_ARRAY':
      return e.converted_type === 'UTF8' || logical === 'STRING' || e.converted_type === 'JSON' ? 'string' : 'binary';
    default:
      return 'string';
  }
}

/** A parquet column -> the `datasets` Features JSON the viewer shows. */
function featureOf(tree: SchemaTree): Feature {
  const e = tree.element;
  const isList = e.converted_type === 'LIST' || e.logical_type?.type === 'LIST';
  if (isList) {
    const repeated = tree.children[0];
    const item = repeated.children.length === 1 ? repeated.children[0] : repeated;
    return { feature: featureOf(item), _type: 'List' };
  }
  if (tree.children.length > 0) {
    return Object.fromEntries(tree.children.map((c) => [c.element.name, featureOf(c)]));
  }
  return { dtype: leafDtype(tree), _type: 'Value' };
}

/** JSON has no bigint or bytes: what the viewer's JSON carries instead. */
function jsonSafe(v: unknown): unknown {
  if (typeof v === 'bigint') return Number(v);
  if (v instanceof Date) return v.toISOString();
  if (v instanceof Uint8Array) return Buffer.from(v).toString('base64');
  if (Array.isArray(v)) return v.map(jsonSafe);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, jsonSafe(x)]));
  return v;
}

export interface SplitData {
  features: { feature_idx: number; name: string; type: Feature }[];
  rows: Record<string, unknown>[];
  numBytes: number;
}

const dataCache = new Map<string, { stamp: string; data: SplitData }>();

/** Every row of a split (fixtures are tiny), cached until a file changes. */
export async function readSplit(split: SplitFiles): Promise<SplitData> {
  const stamp = split.files.map((f) => `${f.abs}:${statSync(f.abs).mtimeMs}:${f.size}`).join('|');
  const key = split.files.map((f) => f.abs).join('|');
  const hit = dataCache.get(key);
  if (hit && hit.stamp === stamp) return hit.data;
  let features: SplitData['features'] = [];
  const rows: Record<string, unknown>[] = [];
  for (const f of split.files) {
    const bytes = readFileSync(f.abs);
    const file = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
    const metadata = parquetMetadata(file);
    if (features.length === 0) {
      features = parquetSchema(metadata).children.map((c, i) => ({
        feature_idx: i,
        name: c.element.name,
        type: featureOf(c),
      }));
    }
    const objects = await parquetReadObjects({ file, metadata });
    for (const o of objects) rows.push(jsonSafe(o) as Record<string, unknown>);
  }
  const data = { features, rows, numBytes: split.files.reduce((a, f) => a + f.size, 0) };
  dataCache.set(key, { stamp, data });
  return data;
}
