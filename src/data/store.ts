// Prepared datasets in a key-value store (IndexedDB in the data worker): a manifest per dataset
// (what it is, its statistics, and the resume cursor) and its shards of packed rows. A shard and
// the manifest that counts it are written in one transaction, so a reload finds either both or
// neither, and resumes after the last complete shard.

import type { FingerprintKey } from './fingerprint.ts';
import type { FormatMapping } from './formats.ts';
import type { IssueSummary } from './issues.ts';
import type { PackStats } from './pack.ts';
import type { PrepareOptions } from './prepare-options.ts';
import type { SourceInfo } from './record-source.ts';
import { emptyBlock, positionIds } from './shards.ts';
import type { PreparedShard, ShardBlock, SplitName } from './shards.ts';
import type { TokenStats, TokenStatsState } from './stats.ts';
import type { KeyValueStore } from './kv.ts';
import type { TemplateId } from './templates.ts';

export const MANIFEST_VERSION = 1;

export interface ShardEntry {
  trainRows: number;
  validationRows: number;
  /** Bytes of the stored arrays. */
  bytes: number;
}

export interface PreparedStats {
  /** Records looked at: examples kept + records skipped. */
  records: number;
  examples: number;
  skipped: IssueSummary;
  /** Lengths, tokens and trained tokens over every kept example (both splits). */
  tokens: TokenStats;
  train: PackStats;
  validation: PackStats;
  /** Bytes stored in all shards. */
  bytes: number;
}

export interface ResumeCursor {
  /** Source units (lines, items, rows) consumed by the stored shards. */
  units: number;
  tokenStats: TokenStatsState;
}

export interface PreparedManifest {
  version: number;
  fingerprint: string;
  key: FingerprintKey;
  name: string;
  source: SourceInfo;
  format: FormatMapping;
  template: { id: TemplateId; endOfTurn: string; warnings: string[] };
  tokenizer: { id: string; digest: string; padId: number; bosId: number | null; eosId: number | null };
  options: Required<Omit<PrepareOptions, 'mapping' | 'templateSource'>>;
  status: 'partial' | 'complete';
  /** Date.now() values. */
  createdAt: number;
  updatedAt: number;
  shards: ShardEntry[];
  stats: PreparedStats;
  cursor: ResumeCursor;
  /** What the caller needs to start this preparation again (the data worker: source + request). */
  origin?: unknown;
}

const manifestKey = (fp: string): string => `m/${fp}`;
const shardKey = (fp: string, index: number, split: SplitName): string => `s/${fp}/${index}/${split}`;

export class PreparedStore {
  constructor(private readonly kv: KeyValueStore) {}

  /** Every manifest, newest first. */
  async list(): Promise<PreparedManifest[]> {
    const keys = (await this.kv.keys()).filter((k) => k.startsWith('m/'));
    const all = await this.kv.getMany<PreparedManifest>(keys);
    return all
      .filter((m): m is PreparedManifest => m !== undefined && m.version === MANIFEST_VERSION)
      .sort((a, b) => b.updatedAt - a.updatedAt);
  }

  async manifest(fp: string): Promise<PreparedManifest | undefined> {
    const m = await this.kv.get<PreparedManifest>(manifestKey(fp));
    return m && m.version === MANIFEST_VERSION ? m : undefined;
  }

  /** Stores shard `index` (its non-empty blocks) and the manifest that counts it, atomically. */
  async commit(manifest: PreparedManifest, index: number | null, blocks: Partial<Record<SplitName, ShardBlock>>): Promise<void> {
    const entries: [string, unknown][] = [];
    if (index !== null) {
      for (const split of ['train', 'validation'] as const) {
        const b = blocks[split];
        if (b && b.rows > 0) entries.push([shardKey(manifest.fingerprint, index, split), b]);
      }
    }
    entries.push([manifestKey(manifest.fingerprint), manifest]);
    await this.kv.setMany(entries);
  }

  /** Shard `index` of a split; a split with no rows in that shard reads as an empty shard. */
  async readShard(fp: string, index: number, split: SplitName = 'train'): Promise<PreparedShard> {
    const m = await this.manifest(fp);
    if (!m) throw new Error(`No prepared dataset ${fp}.`);
    const entry = m.shards[index];
    if (!entry) throw new RangeError(`Prepared dataset ${fp} has ${m.shards.length} shards; there is no shard ${index}.`);
    const rows = split === 'train' ? entry.trainRows : entry.validationRows;
    const block = rows > 0 ? await this.kv.get<ShardBlock>(shardKey(fp, index, split)) : emptyBlock(m.options.maxSeqLength);
    if (!block) throw new Error(`Shard ${index} (${split}) of ${fp} is missing from storage.`);
    return { ...block, index, split, position_ids: positionIds(block) };
  }

  async delete(fp: string): Promise<void> {
    const prefix = `s/${fp}/`;
    const keys = (await this.kv.keys()).filter((k) => k.startsWith(prefix));
    // Manifest first: a half-deleted dataset must not look complete.
    await this.kv.delMany([manifestKey(fp)]);
    if (keys.length > 0) await this.kv.delMany(keys);
  }
}
