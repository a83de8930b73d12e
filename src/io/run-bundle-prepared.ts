// The records of a prepared dataset for its run bundle: the source read again, tokenized as the
// preparation did (the manifest's mapping and options, the same tokenizer and template), and matched
// to the stored rows (bundleData). The headless runner and the data worker both call it.

import { resolveTemplate, type EffectiveTemplate } from '../data/templates.ts';
import type { LoadedTokenizer } from '../data/tokenizer-load.ts';
import type { PreparedManifest } from '../data/store.ts';
import type { RecordSource } from '../data/record-source.ts';
import type { SplitName } from '../data/shards.ts';
import { bundleData, tokenizedRecords, type BundleData, type RowBlock } from './run-bundle-data.ts';

export interface PreparedBundleSource {
  manifest: PreparedManifest;
  /** Shard `index` of a split (PreparedStore.readShard). */
  readShard: (index: number, split: SplitName) => Promise<RowBlock>;
  /** The dataset's source, opened again. */
  source: RecordSource;
  tokenizer: LoadedTokenizer;
  /** Jinja of a 'custom' template (it is not stored with the manifest). */
  templateSource?: string;
  /** Rows kept whole for train.py's token check: a step's worth (batch × accumulation). */
  firstRows?: number;
  signal?: AbortSignal;
}

export interface PreparedBundleData {
  data: BundleData;
  template: EffectiveTemplate;
  /** The pad token's text, when it is one token of the vocabulary (Axolotl's pad_token). */
  padToken: string | null;
}

async function* blocks(s: PreparedBundleSource, split: SplitName): AsyncGenerator<RowBlock> {
  for (let i = 0; i < s.manifest.shards.length; i++) {
    s.signal?.throwIfAborted();
    yield await s.readShard(i, split);
  }
}

function padText(t: LoadedTokenizer): string | null {
  const text = t.tokenizer.decode([t.info.padId], { skip_special_tokens: false });
  const again = t.tokenizer.encode(text, { add_special_tokens: false });
  return again.length === 1 && again[0] === t.info.padId ? text : null;
}

export async function preparedBundleData(s: PreparedBundleSource): Promise<PreparedBundleData> {
  const o = s.manifest.options;
  const template = resolveTemplate(o.template, s.tokenizer.info, { source: s.templateSource });
  const data = await bundleData({
    records: tokenizedRecords(s.source, s.manifest.format, { tokenizer: s.tokenizer.tokenizer, info: s.tokenizer.info, template }, {
      maxSeqLength: o.maxSeqLength,
      trainOnResponsesOnly: o.trainOnResponsesOnly,
      overflow: o.overflow,
    }, s.signal),
    train: blocks(s, 'train'),
    validation: blocks(s, 'validation'),
    firstRows: s.firstRows,
  });
  return { data, template, padToken: padText(s.tokenizer) };
}
