// Tokenize workers (src/data/tokenize-pool.ts): a preparation through them stores exactly the
// bytes, statistics and skip report of a preparation in this thread, whatever order the workers
// finish in, and resumes from its cursor the same way.
import { MessageChannel } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openFileSource } from '../src/data/file-source.ts';
import { MemoryKv } from '../src/data/kv.ts';
import { prepareDataset } from '../src/data/prepare.ts';
import type { PrepareDeps } from '../src/data/prepare.ts';
import type { PrepareOptions } from '../src/data/prepare-options.ts';
import { PreparedStore } from '../src/data/store.ts';
import type { PreparedManifest } from '../src/data/store.ts';
import { startTokenizePool } from '../src/data/tokenize-pool.ts';
import type { PoolReply, PoolRequest, SpawnTokenizeWorker, TokenizeSetup } from '../src/data/tokenize-pool.ts';
import { nodeTokenizeWorkers } from '../src/data/tokenize-pool-node.ts';
import { tokenizeServer } from '../src/data/tokenize-serve.ts';
import type { LoadedTokenizer } from '../src/data/tokenizer-load.ts';
import { llamaTokenizer } from './fixtures/data/demo.ts';
import { syntheticJsonl } from './fixtures/data/synthetic-finetome.ts';

const OPTS: PrepareOptions = {
  template: 'chatml',
  trainOnResponsesOnly: true,
  maxSeqLength: 1024,
  overflow: 'truncate',
  packing: true,
  validationFraction: 0.1,
  seed: 5,
  shardTokens: 25_000,
};

/** 240 FineTome-shaped rows with bad lines of several kinds among them. */
function brokenFile(): File {
  const lines = new TextDecoder().decode(syntheticJsonl(240, 11)).trim().split('\n');
  const bytes: (string | Uint8Array)[] = [];
  lines.forEach((line, i) => {
    if (i === 3) bytes.push('{"conversations": [}\n'); // invalid JSON
    if (i === 70) bytes.push(new Uint8Array([0x7b, 0x22, 0xff, 0x22, 0x7d, 0x0a])); // invalid UTF-8
    if (i === 150) bytes.push('{"conversations":[{"from":"human","value":"no answer"}]}\n');
    if (i === 151) bytes.push('{"conversations":[{"from":"human","value":"q"},{"from":"gpt","value":7}]}\n');
    if (i === 200) bytes.push('not json\n');
    bytes.push(line + '\n');
  });
  return new File(bytes as BlobPart[], 'broken-finetome.jsonl', { lastModified: 1_700_000_000_000 });
}

let tok: LoadedTokenizer;
let reference: { store: PreparedStore; manifest: PreparedManifest };
const pools: { close(): void }[] = [];

beforeAll(async () => {
  tok = await llamaTokenizer();
  const store = new PreparedStore(new MemoryKv());
  reference = { store, manifest: await prepareDataset(await openFileSource(brokenFile()), OPTS, { store, tokenizer: tok }) };
}, 300_000);
afterAll(() => pools.forEach((p) => p.close()));

const timeless = (m: PreparedManifest) => ({ ...m, createdAt: 0, updatedAt: 0 });

async function shards(store: PreparedStore, m: PreparedManifest) {
  const out = [];
  for (const split of ['train', 'validation'] as const) for (let i = 0; i < m.shards.length; i++) out.push(await store.readShard(m.fingerprint, i, split));
  return out;
}

function withPool(spawn: SpawnTokenizeWorker, size: number): PrepareDeps['tokenizeWith'] {
  return async (setup: TokenizeSetup) => {
    const pool = await startTokenizePool(spawn, size, setup);
    pools.push(pool);
    return pool;
  };
}

/**
 * Workers in this thread behind a real MessageChannel (so requests and replies are cloned and
 * transferred as between threads) that hold back every even batch's reply until the next batch's
 * reply has gone: batches finish out of order.
 */
function swappingWorkers(order: number[]): SpawnTokenizeWorker {
  return (onReply) => {
    const { port1, port2 } = new MessageChannel();
    let held: { reply: PoolReply; transfer?: Transferable[] } | null = null;
    const send = (reply: PoolReply, transfer?: Transferable[]) => {
      if (reply.type === 'done') order.push(reply.seq);
      port2.postMessage(reply, (transfer ?? []) as ArrayBuffer[]);
    };
    const handle = tokenizeServer((reply, transfer) => {
      if (reply.type === 'done' && reply.seq % 2 === 0 && held === null) {
        held = { reply, transfer };
        setTimeout(() => {
          if (held?.reply === reply) {
            send(reply, transfer); // the last batch has no successor
            held = null;
          }
        }, 20);
        return;
      }
      send(reply, transfer);
      if (held) {
        send(held.reply, held.transfer);
        held = null;
      }
    });
    port2.on('message', (r: PoolRequest) => void handle(r));
    port1.on('message', (r: PoolReply) => onReply(r));
    return {
      post: (r) => port1.postMessage(r),
      terminate: () => {
        port1.close();
        port2.close();
      },
    };
  };
}

describe('a preparation through tokenize workers', () => {
  it('the reference run has several shards in both splits and all five bad lines counted', () => {
    const m = reference.manifest;
    expect(m.shards.length).toBeGreaterThanOrEqual(4);
    expect(m.stats.validation.rows).toBeGreaterThan(0);
    expect(m.stats.skipped.byReason).toEqual({ 'invalid JSON': 2, 'invalid UTF-8': 1, 'no assistant turn': 1, 'wrong type': 1 });
    expect(m.stats.skipped.examples.map((e) => e.where)).toEqual(['line 4', 'line 72', 'line 153', 'line 155', 'line 205']);
    expect(m.stats.examples).toBe(240);
  });

  it('two worker_threads give the same manifest and byte-identical shards', async () => {
    const store = new PreparedStore(new MemoryKv());
    const m = await prepareDataset(await openFileSource(brokenFile()), OPTS, { store, tokenizer: tok, tokenizeWith: withPool(nodeTokenizeWorkers(), 2) });
    expect(timeless(m)).toEqual(timeless(reference.manifest));
    expect(await shards(store, m)).toEqual(await shards(reference.store, reference.manifest));
  }, 300_000);

  it('batches that finish out of order change nothing', async () => {
    const order: number[] = [];
    const store = new PreparedStore(new MemoryKv());
    const m = await prepareDataset(await openFileSource(brokenFile()), OPTS, { store, tokenizer: tok, tokenizeWith: withPool(swappingWorkers(order), 1) });
    expect(order.slice(0, 4)).toEqual([1, 0, 3, 2]); // the workers really answered out of order
    expect(timeless(m)).toEqual(timeless(reference.manifest));
    expect(await shards(store, m)).toEqual(await shards(reference.store, reference.manifest));
  }, 300_000);

  it('cancelled after two shards and resumed through workers, it ends with the bytes of one uninterrupted run', async () => {
    const store = new PreparedStore(new MemoryKv());
    const ctrl = new AbortController();
    const first = prepareDataset(await openFileSource(brokenFile()), OPTS, {
      store,
      tokenizer: tok,
      signal: ctrl.signal,
      tokenizeWith: withPool(swappingWorkers([]), 2),
      onProgress: (p) => {
        if (p.shards >= 2) ctrl.abort();
      },
    });
    await expect(first).rejects.toMatchObject({ name: 'AbortError' });
    const partial = await store.manifest(reference.manifest.fingerprint);
    expect(partial?.shards).toHaveLength(2);
    // The cursor is where the stored examples end, not where reading had got to.
    expect(partial!.cursor.units).toBeLessThan(150);
    const m = await prepareDataset(await openFileSource(brokenFile()), OPTS, { store, tokenizer: tok, tokenizeWith: withPool(swappingWorkers([]), 2) });
    expect(timeless(m)).toEqual(timeless(reference.manifest));
    expect(await shards(store, m)).toEqual(await shards(reference.store, reference.manifest));
  }, 300_000);

  it('a worker that dies fails the preparation with a message, keeping the shards stored before', async () => {
    const store = new PreparedStore(new MemoryKv());
    let batches = 0;
    const dying: SpawnTokenizeWorker = (onReply, onError) => {
      const inner = swappingWorkers([])(onReply, onError);
      return {
        post: (r) => {
          if (r.type === 'batch' && ++batches === 6) setTimeout(() => onError(new Error('it exited with code 1')));
          else inner.post(r);
        },
        terminate: inner.terminate,
      };
    };
    const run = prepareDataset(await openFileSource(brokenFile()), OPTS, { store, tokenizer: tok, tokenizeWith: withPool(dying, 1) });
    await expect(run).rejects.toThrow('A tokenize worker failed: it exited with code 1');
    const kept = await store.manifest(reference.manifest.fingerprint);
    expect(kept?.status).toBe('partial');
    expect(kept!.shards.length).toBeGreaterThanOrEqual(1);
  }, 300_000);

  it('a worker that cannot build the tokenizer makes the pool refuse to start', async () => {
    const setup: TokenizeSetup = { tokenizer: { id: 'broken', files: { tokenizerJson: { model: 'nonsense' }, tokenizerConfig: {} } }, template: reference.manifest.template as never, options: { maxSeqLength: 64, trainOnResponsesOnly: true, overflow: 'truncate' } };
    await expect(startTokenizePool(swappingWorkers([]), 2, setup)).rejects.toThrow(/^A tokenize worker failed: The tokenizer files of broken could not be read/);
  });
});
