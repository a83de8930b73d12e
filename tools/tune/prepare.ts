// The dataset, prepared as the Data tab prepares it (src/data/prepare.ts: template, masks, packing,
// validation split) with the model's own tokenizer, into a store on disk under the cache folder.
// The fingerprint covers the source, the tokenizer and every option, so a second run with the same
// inputs finds the dataset complete and reads it without tokenizing again.
import { join } from 'node:path';
import { prepareDataset } from '../../src/data/prepare.ts';
import type { PrepareOptions } from '../../src/data/prepare-options.ts';
import type { RecordSource } from '../../src/data/record-source.ts';
import { PreparedStore, type PreparedManifest } from '../../src/data/store.ts';
import { tokenizerFromFiles, type LoadedTokenizer } from '../../src/data/tokenizer-load.ts';
import type { RowSource } from '../../src/engine/train/loop.ts';
import { shardRowSource } from '../../src/engine/train/shard-source.ts';
import type { ModelFiles } from '../../src/io/model-source.ts';
import { FileKv } from './file-kv.ts';
import type { Output } from './output.ts';

export interface PreparedData {
  manifest: PreparedManifest;
  /** The store already held it complete. */
  cached: boolean;
  train: RowSource;
  validation: RowSource;
  /** Where the shards are, and the tokenizer that made them (for the run bundle). */
  store: PreparedStore;
  tokenizer: LoadedTokenizer;
}

const CHAT_TEMPLATE_FILE = 'chat_template.jinja';

/** The model's tokenizer from its files (chat_template.jinja too, as the data worker reads it). */
export async function modelTokenizer(files: ModelFiles, signal?: AbortSignal): Promise<LoadedTokenizer> {
  const text = async (path: string): Promise<string> => new TextDecoder().decode(await files.bytes(path, signal));
  const json = async (path: string): Promise<Record<string, unknown>> => {
    try {
      return JSON.parse(await text(path)) as Record<string, unknown>;
    } catch (e) {
      if (e instanceof SyntaxError) throw new Error(`${path} of ${files.id} is not JSON: ${e.message}`);
      throw e;
    }
  };
  if (!files.has('tokenizer.json')) throw new Error(`${files.id} has no tokenizer.json: the dataset cannot be tokenized for it.`);
  return tokenizerFromFiles(files.id, {
    tokenizerJson: await json('tokenizer.json'),
    tokenizerConfig: files.has('tokenizer_config.json') ? await json('tokenizer_config.json') : {},
    chatTemplate: files.has(CHAT_TEMPLATE_FILE) ? await text(CHAT_TEMPLATE_FILE) : null,
  });
}

export async function prepareData(
  source: RecordSource,
  tokenizer: LoadedTokenizer,
  options: PrepareOptions,
  cacheDir: string,
  out: Output,
  signal?: AbortSignal,
): Promise<PreparedData> {
  const store = new PreparedStore(new FileKv(join(cacheDir, 'datasets')));
  let cached = false;
  const manifest = await prepareDataset(source, options, {
    store,
    tokenizer,
    signal,
    onProgress: (p) => {
      if (p.phase === 'cached') cached = true;
      out.progress('prepare', { ...p });
    },
  });
  const train = await shardRowSource(store, manifest.fingerprint, 'train');
  const validation = await shardRowSource(store, manifest.fingerprint, 'validation');
  return { manifest, cached, train, validation, store, tokenizer };
}

/** One sentence about the prepared dataset. */
export function describePrepared(d: PreparedData): string {
  const m = d.manifest;
  const skipped = m.stats.skipped.total > 0 ? `, ${m.stats.skipped.total} records skipped (${Object.entries(m.stats.skipped.byReason).map(([r, n]) => `${r}: ${n}`).join(', ')})` : '';
  const val = d.validation.rows > 0 ? ` + ${d.validation.rows} validation rows` : '';
  return `${d.cached ? 'Prepared before (cache hit)' : 'Prepared'}: ${m.name}, ${m.stats.examples} examples -> ${d.train.rows} train rows${val} of ${m.options.maxSeqLength} tokens${skipped}.`;
}
