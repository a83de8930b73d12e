import { beforeAll, describe, expect, it } from 'vitest';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { DataError } from '../src/data/errors.ts';
import { openFileSource } from '../src/data/file-source.ts';
import { MemoryKv } from '../src/data/kv.ts';
import { prepareDataset } from '../src/data/prepare.ts';
import type { PrepareOptions } from '../src/data/prepare-options.ts';
import type { PrepareProgress } from '../src/data/progress.ts';
import { PreparedStore } from '../src/data/store.ts';
import type { PreparedManifest } from '../src/data/store.ts';
import { shardRow } from '../src/data/shards.ts';
import type { LoadedTokenizer } from '../src/data/tokenizer-load.ts';
import { counting, DEMO_JSONL, demoTokenizer, fileOf } from './fixtures/data/demo.ts';

let tok: LoadedTokenizer;
beforeAll(async () => {
  tok = await demoTokenizer();
});

const OPTS: PrepareOptions = {
  template: 'chatml',
  trainOnResponsesOnly: true,
  maxSeqLength: 128,
  overflow: 'truncate',
  packing: true,
  validationFraction: 0,
  seed: 0,
};

const demoFile = () => fileOf(DEMO_JSONL, 'sort-words.jsonl');
const newStore = () => new PreparedStore(new MemoryKv());

/** A manifest without the fields that depend on when it was made. */
function timeless(m: PreparedManifest) {
  return { ...m, createdAt: 0, updatedAt: 0 };
}

async function allShards(store: PreparedStore, m: PreparedManifest, split: 'train' | 'validation' = 'train') {
  const out = [];
  for (let i = 0; i < m.shards.length; i++) out.push(await store.readShard(m.fingerprint, i, split));
  return out;
}

describe('prepareDataset: the demo JSONL', () => {
  it('prepares 300 ShareGPT records into packed rows with consistent statistics', async () => {
    const store = newStore();
    const events: PrepareProgress[] = [];
    const m = await prepareDataset(await openFileSource(demoFile()), { ...OPTS, validationFraction: 0.1 }, { store, tokenizer: tok, onProgress: (p) => events.push(p) });
    expect(m.status).toBe('complete');
    expect(m.format.kind).toBe('sharegpt');
    expect(m.stats.records).toBe(300);
    expect(m.stats.examples).toBe(300);
    expect(m.stats.skipped.total).toBe(0);
    const { train, validation, tokens } = m.stats;
    expect(train.documents + validation.documents).toBe(300);
    expect(validation.documents).toBeGreaterThan(10); // ~10% of 300
    expect(validation.documents).toBeLessThan(60);
    expect(train.tokens + validation.tokens).toBe(tokens.tokens);
    expect(train.trainedTokens + validation.trainedTokens).toBe(tokens.trainedTokens);
    expect(tokens.trainedTokens).toBeLessThan(tokens.tokens / 2);
    expect(train.efficiency).toBeGreaterThan(0.9);
    expect(tokens.histogram.counts.reduce((a, b) => a + b, 0) + tokens.histogram.overflow).toBe(300);

    // Rows: exactly maxSeqLength, segments and positions restart per document, padding untrained.
    const shards = await allShards(store, m);
    expect(shards.reduce((n, s) => n + s.rows, 0)).toBe(train.rows);
    let seen = 0;
    for (const s of shards) {
      for (let r = 0; r < s.rows; r++) {
        const row = shardRow(s, r);
        for (let i = 0; i < row.input_ids.length; i++) {
          const seg = row.segment_ids[i];
          if (seg === 0) {
            expect(row.labels_mask[i]).toBe(0);
            expect(row.input_ids[i]).toBe(tok.info.padId);
            continue;
          }
          seen++;
          const starts = i === 0 || row.segment_ids[i - 1] !== seg;
          expect(row.position_ids[i]).toBe(starts ? 0 : row.position_ids[i - 1] + 1);
          if (starts) {
            expect(row.input_ids[i]).toBe(tok.info.bosId); // every document opens with BOS
            expect(row.labels_mask[i]).toBe(0); // never predicted across documents
          }
        }
      }
    }
    expect(seen).toBe(train.tokens);

    expect(events[0].phase).toBe('detecting');
    const last = events[events.length - 1];
    expect(last).toMatchObject({ phase: 'done', recordsRead: 300, examples: 300, fraction: 1, etaSeconds: 0, fingerprint: m.fingerprint });
  });

  it('is a cache hit the second time: nothing is read again', async () => {
    const store = newStore();
    const first = await prepareDataset(await openFileSource(demoFile()), OPTS, { store, tokenizer: tok });
    const src = counting(await openFileSource(demoFile()));
    const phases: string[] = [];
    const again = await prepareDataset(src, OPTS, { store, tokenizer: tok, onProgress: (p) => phases.push(p.phase) });
    expect(src.yielded).toBe(0);
    expect(phases).toContain('cached');
    expect(again).toEqual(first);
    // Another option is another dataset.
    const other = await prepareDataset(await openFileSource(demoFile()), { ...OPTS, maxSeqLength: 256 }, { store, tokenizer: tok });
    expect(other.fingerprint).not.toBe(first.fingerprint);
    expect((await store.list()).map((x) => x.fingerprint).sort()).toEqual([first.fingerprint, other.fingerprint].sort());
  });

  it('without packing: one padded example per row', async () => {
    const m = await prepareDataset(await openFileSource(demoFile()), { ...OPTS, packing: false }, { store: newStore(), tokenizer: tok });
    expect(m.stats.train.rows).toBe(300);
    expect(m.stats.train.documents).toBe(300);
    expect(m.stats.train.efficiency).toBeCloseTo(m.stats.tokens.meanLength / 128, 10);
  });
});

describe('resume after cancel', () => {
  const SMALL: PrepareOptions = { ...OPTS, validationFraction: 0.2, shardTokens: 1500 };

  async function cancelAfter(store: PreparedStore, file: File, shards: number): Promise<void> {
    const ctrl = new AbortController();
    const run = prepareDataset(await openFileSource(file), SMALL, {
      store,
      tokenizer: tok,
      signal: ctrl.signal,
      progressIntervalMs: 0,
      onProgress: (p) => {
        if (p.shards >= shards) ctrl.abort();
      },
    });
    await expect(run).rejects.toMatchObject({ name: 'AbortError' });
  }

  it('continues from the stored cursor and ends with the bytes of an uninterrupted run', async () => {
    const reference = newStore();
    const whole = await prepareDataset(await openFileSource(demoFile()), SMALL, { store: reference, tokenizer: tok });
    expect(whole.shards.length).toBeGreaterThanOrEqual(5);

    const store = newStore();
    await cancelAfter(store, demoFile(), 2);
    const partial = (await store.list())[0];
    expect(partial.status).toBe('partial');
    expect(partial.shards).toHaveLength(2);
    const units = partial.cursor.units;
    expect(units).toBeGreaterThan(0);
    expect(units).toBeLessThan(300);

    // A reload: a new source object for the same file, the same store.
    const src = counting(await openFileSource(demoFile()));
    const events: PrepareProgress[] = [];
    const resumed = await prepareDataset(src, SMALL, { store, tokenizer: tok, onProgress: (p) => events.push(p) });
    expect(src.skips).toEqual([units]);
    expect(src.yielded).toBe(300 - units); // the stored shards' records are not read again
    expect(events[events.length - 1].resumedShards).toBe(2);

    expect(timeless(resumed)).toEqual(timeless(whole));
    for (const split of ['train', 'validation'] as const) {
      expect(await allShards(store, resumed, split)).toEqual(await allShards(reference, whole, split));
    }
  });

  it('waits for the report of each stored shard: a cancel that the report sends later still stops right there', async () => {
    const store = newStore();
    const ctrl = new AbortController();
    const run = prepareDataset(await openFileSource(demoFile()), SMALL, {
      store,
      tokenizer: tok,
      signal: ctrl.signal,
      onProgress: async (p) => {
        // As the UI does: the cancel arrives after a round trip, while the data worker would go on.
        if (p.shards === 2) await new Promise((r) => setTimeout(r, 50)).then(() => ctrl.abort());
      },
    });
    await expect(run).rejects.toMatchObject({ name: 'AbortError' });
    expect((await store.list())[0].shards).toHaveLength(2);
  });

  it('resumes twice in a row, and a JSON array and a Parquet file resume the same way', async () => {
    const lines = new TextDecoder().decode(DEMO_JSONL).trim().split('\n');
    const records = lines.map((l) => JSON.parse(l) as { conversations: { from: string; value: string }[] });
    const files = [
      demoFile(),
      fileOf('[\n' + lines.join(',\n') + '\n]\n', 'sort-words.json'),
      fileOf(
        new Uint8Array(
          parquetWriteBuffer({
            columnData: [{ name: 'conversations', data: records.map((r) => r.conversations) }],
            schema: [
              { name: 'root', num_children: 1 },
              { name: 'conversations', repetition_type: 'OPTIONAL', converted_type: 'LIST', num_children: 1 },
              { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
              { name: 'element', repetition_type: 'OPTIONAL', num_children: 2 },
              { name: 'from', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
              { name: 'value', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
            ],
            rowGroupSize: 64,
          }),
        ),
        'sort-words.parquet',
      ),
    ];
    let reference: PreparedManifest | null = null;
    for (const file of files) {
      const store = newStore();
      await cancelAfter(store, file, 1);
      await cancelAfter(store, file, 3);
      const m = await prepareDataset(await openFileSource(file), SMALL, { store, tokenizer: tok });
      const fresh = await prepareDataset(await openFileSource(file), SMALL, { store: newStore(), tokenizer: tok });
      expect(timeless(m)).toEqual(timeless(fresh));
      // Same records in every container: same statistics and rows.
      if (reference) expect(m.stats).toEqual(reference.stats);
      reference ??= m;
    }
  });
});

describe('malformed input', () => {
  it('counts bad lines with line numbers and loses no good record', async () => {
    const good = new TextDecoder().decode(DEMO_JSONL).trim().split('\n');
    const lines = [...good];
    lines.splice(3, 0, '{"conversations": [}'); // line 4
    lines.splice(10, 0, 'not json at all'); // line 11
    lines.splice(20, 0, '{"conversations":[{"from":"human","value":"q"}]}'); // line 21: no answer
    lines.splice(30, 0, '{"conversations":[]}'); // line 31
    lines.splice(40, 0, '{"conversations":[{"from":"human","value":"q"},{"from":"gpt","value":7}]}'); // line 41
    lines.splice(50, 0, '{"conversations":[{"from":"human","value":"q"},{"from":"robot","value":"a"}]}'); // line 51
    lines.splice(60, 0, '[1, 2]'); // line 61
    lines.splice(70, 0, ''); // line 71: blank, not a record
    const file = fileOf(lines.join('\n') + '\n', 'broken.jsonl');
    const m = await prepareDataset(await openFileSource(file), OPTS, { store: newStore(), tokenizer: tok });
    expect(m.stats.examples).toBe(300);
    expect(m.stats.skipped.byReason).toEqual({
      'invalid JSON': 2,
      'no assistant turn': 1,
      'empty conversation': 1,
      'wrong type': 1,
      'unknown role': 1,
      'not a JSON object': 1,
    });
    expect(m.stats.skipped.examples.map((e) => e.where)).toEqual(['line 4', 'line 11', 'line 21', 'line 31', 'line 41', 'line 51', 'line 61']);
    expect(m.stats.records).toBe(307);
    const clean = await prepareDataset(await openFileSource(demoFile()), OPTS, { store: newStore(), tokenizer: tok });
    expect(m.stats.tokens).toEqual(clean.stats.tokens);
  });

  it('refuses a file with no usable record, naming the fields it found', async () => {
    const file = fileOf('{"a":1,"b":"x"}\n{"a":2,"b":"y"}\n', 'weird.jsonl');
    const run = prepareDataset(await openFileSource(file), OPTS, { store: newStore(), tokenizer: tok });
    await expect(run).rejects.toBeInstanceOf(DataError);
    await expect(run).rejects.toThrow(
      'No conversations found: the file has columns [a, b]; map one of them as ShareGPT/OpenAI messages, Alpaca or text.',
    );
    const allBad = fileOf('{oops\n{"conversations":[]}\n', 'bad.jsonl');
    await expect(prepareDataset(await openFileSource(allBad), { ...OPTS, mapping: { kind: 'text', column: 'text' } }, { store: newStore(), tokenizer: tok })).rejects.toThrow(
      /No usable records in bad\.jsonl: 2 skipped \(invalid JSON: 1, missing field: 1\)\. First: line 1: invalid JSON/,
    );
  });

  it('refuses empty files, binary files under a text name, and unknown kinds', async () => {
    await expect(openFileSource(fileOf('', 'empty.jsonl'))).rejects.toThrow('empty.jsonl is empty.');
    const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]);
    await expect(openFileSource(fileOf(png, 'photo.jsonl'))).rejects.toThrow(/photo\.jsonl is not a JSONL, JSON or Parquet file: it looks like a PNG image/);
    await expect(openFileSource(fileOf('hello world', 'notes.txt'))).rejects.toMatchObject({ name: 'DataError', reason: 'unknown-file-kind' });
    const notArray = await openFileSource(fileOf('"just a string"', 'x.json'));
    await expect(prepareDataset(notArray, { ...OPTS, mapping: { kind: 'text', column: 'text' } }, { store: newStore(), tokenizer: tok })).rejects.toMatchObject({ reason: 'unknown-file-kind' });
  });

  it('a full disk keeps what was stored and says how much more is needed', async () => {
    const kv = new MemoryKv();
    const store = new PreparedStore(kv);
    const opts = { ...OPTS, shardTokens: 1500 };
    let commits = 0;
    const setMany = kv.setMany.bind(kv);
    kv.setMany = async (entries) => {
      if (++commits === 3) throw new DOMException('The quota has been exceeded.', 'QuotaExceededError');
      return setMany(entries);
    };
    const run = prepareDataset(await openFileSource(demoFile()), opts, { store, tokenizer: tok });
    await expect(run).rejects.toMatchObject({ name: 'DataError', reason: 'quota' });
    await expect(run).rejects.toThrow(/storage is full\. 2 shards \([\d.]+ KiB\) of sort-words\.jsonl are stored and kept; (about|at least) [\d.]+ KiB more is needed/);
    const kept = await store.list();
    expect(kept[0].shards).toHaveLength(2);
    kv.setMany = setMany;
    const done = await prepareDataset(await openFileSource(demoFile()), opts, { store, tokenizer: tok });
    expect(done.status).toBe('complete');
    expect(done.stats.examples).toBe(300);
  });
});

describe('store', () => {
  it('lists, reads and deletes prepared datasets', async () => {
    const kv = new MemoryKv();
    const store = new PreparedStore(kv);
    const m = await prepareDataset(await openFileSource(demoFile()), { ...OPTS, shardTokens: 3000, validationFraction: 0.1 }, { store, tokenizer: tok });
    expect(m.shards.length).toBeGreaterThan(1);
    const v = await store.readShard(m.fingerprint, 0, 'validation');
    expect(v.rows).toBe(m.shards[0].validationRows);
    await expect(store.readShard(m.fingerprint, m.shards.length)).rejects.toThrow(/there is no shard/);
    await store.delete(m.fingerprint);
    expect(await store.list()).toEqual([]);
    expect(await kv.keys()).toEqual([]);
  });
});
