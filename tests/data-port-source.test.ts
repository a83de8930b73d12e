// Batches over a MessagePort (src/engine/train/port-source.ts): the trainer's RowSource on one end
// of a real MessageChannel gives exactly the batches of the IndexedDB-shard source the data worker
// serves on the other end, asks for the next batch ahead, and turns failures into readable errors.
import { beforeAll, describe, expect, it } from 'vitest';
import { openFileSource } from '../src/data/file-source.ts';
import { MemoryKv } from '../src/data/kv.ts';
import { prepareDataset } from '../src/data/prepare.ts';
import { PreparedStore } from '../src/data/store.ts';
import type { PreparedManifest } from '../src/data/store.ts';
import type { RowSource } from '../src/engine/train/loop.ts';
import { portRowSource, serveRowSource } from '../src/engine/train/port-source.ts';
import type { BatchPort } from '../src/engine/train/port-source.ts';
import { shardRowSource } from '../src/engine/train/shard-source.ts';
import { DEMO_JSONL, demoTokenizer, fileOf } from './fixtures/data/demo.ts';

let store: PreparedStore;
let m: PreparedManifest;

beforeAll(async () => {
  store = new PreparedStore(new MemoryKv());
  const options = { template: 'chatml', trainOnResponsesOnly: true, maxSeqLength: 128, overflow: 'truncate', packing: true, validationFraction: 0.2, seed: 3, shardTokens: 1500 } as const;
  m = await prepareDataset(await openFileSource(fileOf(DEMO_JSONL, 'sort-words.jsonl')), options, { store, tokenizer: await demoTokenizer() });
});

/** A served source that records the reads it is asked for; waitFor resolves once one is asked. */
function recording(source: Promise<RowSource>): { source: Promise<RowSource>; reads: string[]; waitFor: (read: string) => Promise<void> } {
  const reads: string[] = [];
  const waiters: { read: string; wake: () => void }[] = [];
  const wrapped = source.then((s) => ({
    rows: s.rows,
    seqLength: s.seqLength,
    read: (start: number, count: number) => {
      const read = `${start}+${count}`;
      reads.push(read);
      for (const w of waiters) if (w.read === read) w.wake();
      return s.read(start, count);
    },
  }));
  const waitFor = (read: string) => (reads.includes(read) ? Promise.resolve() : new Promise<void>((wake) => waiters.push({ read, wake })));
  return { source: wrapped, reads, waitFor };
}

const channel = (): [BatchPort, BatchPort] => {
  const { port1, port2 } = new MessageChannel();
  return [port1 as unknown as BatchPort, port2 as unknown as BatchPort];
};

describe('rows over a MessagePort', () => {
  it('the prepared dataset spans several shards in both splits', () => {
    expect(m.shards.length).toBeGreaterThanOrEqual(4);
    expect(m.stats.validation.rows).toBeGreaterThan(3);
  });

  for (const split of ['train', 'validation'] as const) {
    it(`${split}: every batch of a training loop's reads (two epochs, a short last batch) equals the shard source's`, async () => {
      const [serving, reading] = channel();
      serveRowSource(serving, shardRowSource(store, m.fingerprint, split));
      const remote = await portRowSource(reading);
      const local = await shardRowSource(store, m.fingerprint, split);
      expect([remote.rows, remote.seqLength]).toEqual([local.rows, local.seqLength]);
      const batch = 3;
      let cursor = 0;
      for (let step = 0; step < Math.ceil((2 * local.rows) / batch); step++) {
        if (cursor >= local.rows) cursor = 0;
        const count = Math.min(batch, local.rows - cursor);
        const got = await remote.read(cursor, count);
        expect(got, `rows ${cursor}+${count}`).toEqual(await local.read(cursor, count));
        cursor += count;
      }
      remote.close();
    });
  }

  it('asks for the next batch before it is read, and only once', async () => {
    const [serving, reading] = channel();
    const served = recording(shardRowSource(store, m.fingerprint));
    serveRowSource(serving, served.source);
    const remote = await portRowSource(reading);
    await remote.read(0, 4);
    await served.waitFor('4+4'); // asked for without a read from the trainer
    expect(served.reads).toEqual(['0+4', '4+4']);
    await remote.read(4, 4);
    expect(served.reads.filter((r) => r === '4+4')).toHaveLength(1);
    // At the end of the rows the next batch is the first one again (a new epoch), cut to fit.
    await remote.read(remote.rows - 2, 2);
    await served.waitFor('0+2');
    remote.close();
  });

  it('an unknown dataset: opening rejects with the data worker\'s message', async () => {
    const [serving, reading] = channel();
    serveRowSource(serving, shardRowSource(store, 'no-such-fingerprint'));
    await expect(portRowSource(reading)).rejects.toThrow('No prepared dataset no-such-fingerprint.');
  });

  it('a dataset deleted while training: the next read rejects, naming the rows and the reason', async () => {
    const other = new PreparedStore(new MemoryKv());
    const options = { template: 'chatml', trainOnResponsesOnly: true, maxSeqLength: 128, overflow: 'truncate', packing: true, validationFraction: 0, seed: 1, shardTokens: 1500 } as const;
    const doomed = await prepareDataset(await openFileSource(fileOf(DEMO_JSONL, 'sort-words.jsonl')), options, { store: other, tokenizer: await demoTokenizer() });
    const [serving, reading] = channel();
    serveRowSource(serving, shardRowSource(other, doomed.fingerprint));
    const remote = await portRowSource(reading);
    await remote.read(0, 2);
    await other.delete(doomed.fingerprint);
    const far = remote.rows - 1; // in the last shard, not the one cached
    await expect(remote.read(far, 1)).rejects.toThrow(`Reading rows ${far}..${far + 1} of the dataset failed: No prepared dataset ${doomed.fingerprint}.`);
    remote.close();
  });

  it('a port closed by the data worker rejects the reads waiting and the later ones; rows out of range are refused here', async () => {
    const [serving, reading] = channel();
    serveRowSource(serving, shardRowSource(store, m.fingerprint));
    const remote = await portRowSource(reading);
    await expect(remote.read(remote.rows - 1, 2)).rejects.toThrow(RangeError);
    const waiting = remote.read(0, 2);
    serving.close();
    await expect(waiting).rejects.toThrow('The data worker closed the batch port.');
    await expect(remote.read(2, 2)).rejects.toThrow('The data worker closed the batch port.');
  });

  it('a port closed by the trainer rejects later reads', async () => {
    const [serving, reading] = channel();
    serveRowSource(serving, shardRowSource(store, m.fingerprint));
    const remote = await portRowSource(reading);
    remote.close();
    await expect(remote.read(0, 1)).rejects.toThrow('The batch port was closed.');
  });
});
