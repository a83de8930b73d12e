// A RowSource over a prepared dataset's shards (src/data/store.ts, IndexedDB in the browser): rows
// are numbered across the shards of a split in order; the shard being read is cached, so reading
// consecutive rows costs one storage read per shard.
import type { PreparedShard, SplitName } from '../../data/shards.ts';
import type { PreparedStore } from '../../data/store.ts';
import type { PackedBatch } from '../forward.ts';
import { packRows, type RowSource } from './loop.ts';

export async function shardRowSource(store: PreparedStore, fingerprint: string, split: SplitName = 'train'): Promise<RowSource> {
  const m = await store.manifest(fingerprint);
  if (!m) throw new Error(`No prepared dataset ${fingerprint}.`);
  const counts = m.shards.map((s) => (split === 'train' ? s.trainRows : s.validationRows));
  const starts: number[] = [];
  let rows = 0;
  for (const c of counts) {
    starts.push(rows);
    rows += c;
  }
  const seqLength = m.options.maxSeqLength;
  let cached: PreparedShard | null = null;
  const shard = async (i: number): Promise<PreparedShard> => {
    if (cached?.index !== i) cached = await store.readShard(fingerprint, i, split);
    return cached;
  };
  return {
    rows,
    seqLength,
    async read(start: number, count: number): Promise<PackedBatch> {
      if (start < 0 || count < 1 || start + count > rows) throw new RangeError(`rows ${start}..${start + count} of ${rows}`);
      const out: { inputIds: ArrayLike<number>; segmentIds: ArrayLike<number>; lossMask: ArrayLike<number> }[] = [];
      for (let r = start; r < start + count; r++) {
        let i = 0;
        while (i + 1 < starts.length && starts[i + 1] <= r) i++;
        const s = await shard(i);
        const a = (r - starts[i]) * s.seqLength;
        const b = a + s.seqLength;
        out.push({ inputIds: s.input_ids.subarray(a, b), segmentIds: s.segment_ids.subarray(a, b), lossMask: s.labels_mask.subarray(a, b) });
      }
      return packRows(out, seqLength);
    },
  };
}
