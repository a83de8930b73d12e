// Throughput of preparing (read + template + tokenize + pack + store) in Node, one core.
// Skipped unless WEBTUNE_BENCH is set: WEBTUNE_BENCH=20000 npx vitest run --project unit tests/data-throughput
// (the number is how many FineTome-shaped synthetic rows to prepare; default 5000).
import { describe, expect, it } from 'vitest';
import { openFileSource } from '../src/data/file-source.ts';
import type { KeyValueStore } from '../src/data/kv.ts';
import { MemoryKv } from '../src/data/kv.ts';
import { prepareDataset } from '../src/data/prepare.ts';
import type { PrepareOptions } from '../src/data/prepare-options.ts';
import { PreparedStore } from '../src/data/store.ts';
import type { LoadedTokenizer } from '../src/data/tokenizer-load.ts';
import { DEMO_JSONL, demoTokenizer, fileOf, llamaTokenizer } from './fixtures/data/demo.ts';
import { syntheticJsonl } from './fixtures/data/synthetic-finetome.ts';

const BENCH = process.env.WEBTUNE_BENCH;

/** Keeps manifests, drops shard bytes: memory then shows the pipeline's own footprint. */
class CountingKv extends MemoryKv implements KeyValueStore {
  stored = 0;
  override async setMany(entries: readonly [string, unknown][]): Promise<void> {
    for (const [k, v] of entries) {
      if (k.startsWith('s/')) {
        const b = v as { input_ids: Int32Array; labels_mask: Uint8Array; segment_ids: Uint16Array };
        this.stored += b.input_ids.byteLength + b.labels_mask.byteLength + b.segment_ids.byteLength;
      }
    }
    await super.setMany(entries.filter(([k]) => !k.startsWith('s/')));
  }
}

async function measure(name: string, bytes: Uint8Array, tok: LoadedTokenizer, options: PrepareOptions) {
  const file = fileOf(bytes, `${name}.jsonl`);
  (globalThis as { gc?: () => void }).gc?.();
  const base = process.memoryUsage();
  let peakRss = base.rss;
  let peakHeap = base.heapUsed;
  const timer = setInterval(() => {
    const m = process.memoryUsage();
    peakRss = Math.max(peakRss, m.rss);
    peakHeap = Math.max(peakHeap, m.heapUsed);
  }, 20);
  const kv = new CountingKv();
  const t0 = performance.now();
  const m = await prepareDataset(await openFileSource(file), options, { store: new PreparedStore(kv), tokenizer: tok });
  const seconds = (performance.now() - t0) / 1000;
  clearInterval(timer);
  const result = {
    name,
    fileMiB: +(bytes.length / 2 ** 20).toFixed(1),
    records: m.stats.records,
    tokens: m.stats.tokens.tokens,
    meanLength: Math.round(m.stats.tokens.meanLength),
    seconds: +seconds.toFixed(2),
    recordsPerSecond: Math.round(m.stats.records / seconds),
    tokensPerSecond: Math.round(m.stats.tokens.tokens / seconds),
    packingEfficiency: +m.stats.train.efficiency.toFixed(4),
    shards: m.shards.length,
    storedMiB: +(kv.stored / 2 ** 20).toFixed(1),
    peakRssGrowthMiB: Math.round((peakRss - base.rss) / 2 ** 20),
    peakHeapGrowthMiB: Math.round((peakHeap - base.heapUsed) / 2 ** 20),
  };
  console.log(JSON.stringify(result));
  return result;
}

describe.skipIf(!BENCH)('preparation throughput', () => {
  const rows = Number(BENCH) > 1 ? Number(BENCH) : 5000;
  const chatml: PrepareOptions = { template: 'chatml', trainOnResponsesOnly: true, maxSeqLength: 2048, overflow: 'truncate', packing: true, validationFraction: 0, seed: 0 };

  it('the demo (300 short conversations, demo tokenizer), and 20 copies of it', async () => {
    const tok = await demoTokenizer();
    await measure('demo', DEMO_JSONL, tok, chatml); // warm-up included on purpose: a first run
    const x20 = new Uint8Array(DEMO_JSONL.length * 20);
    for (let i = 0; i < 20; i++) x20.set(DEMO_JSONL, i * DEMO_JSONL.length);
    const r = await measure('demo-x20', x20, tok, chatml);
    expect(r.records).toBe(6000);
  }, 600_000);

  it(`a FineTome-shaped file (${rows} rows, Llama 3.1 tokenizer)`, async () => {
    const tok = await llamaTokenizer();
    await measure('finetome-warmup', syntheticJsonl(200, 7), tok, chatml);
    const r = await measure(`finetome-${rows}`, syntheticJsonl(rows), tok, chatml);
    expect(r.records).toBe(rows);
  }, 3_600_000);
});
