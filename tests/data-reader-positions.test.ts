// Resuming readers: positions reported per record, and the skipped part neither parsed nor reported.
import { describe, expect, it } from 'vitest';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { IssueLog } from '../src/data/issues.ts';
import { readJsonArray } from '../src/data/json-array.ts';
import { readJsonl } from '../src/data/jsonl.ts';
import { readParquet } from '../src/data/parquet.ts';
import { bytesToStream } from '../src/data/text-stream.ts';
import type { ReadPosition, SourceRecord } from '../src/data/types.ts';

const enc = new TextEncoder();

async function collect(gen: AsyncIterable<SourceRecord>, pos: ReadPosition): Promise<[string, number][]> {
  const out: [string, number][] = [];
  for await (const r of gen) out.push([r.where, pos.units]);
  return out;
}

describe('reader positions and skipping', () => {
  const jsonl = ['{"n":1}', 'bad', '', '{"n":2}', 'x'.repeat(300), '{"n":3}', '{"n":4}'].join('\n');

  it('JSONL: the position is the line number; skipped lines are not parsed or reported', async () => {
    for (const chunk of [1, 7, 64, 4096]) {
      const pos = { units: 0 };
      const issues = new IssueLog();
      const all = await collect(readJsonl(bytesToStream(enc.encode(jsonl), chunk), issues, { position: pos, maxLineBytes: 100 }), pos);
      expect(all).toEqual([
        ['line 1', 1],
        ['line 4', 4],
        ['line 6', 6],
        ['line 7', 7],
      ]);
      expect(issues.total).toBe(2); // "bad" and the long line
      const later = new IssueLog();
      const rest = await collect(readJsonl(bytesToStream(enc.encode(jsonl), chunk), later, { position: pos, maxLineBytes: 100, skipLines: 5 }), pos);
      expect(rest).toEqual([
        ['line 6', 6],
        ['line 7', 7],
      ]);
      expect(later.total).toBe(0);
    }
  });

  it('JSON array: the position is the item number; skipped items are not parsed', async () => {
    const text = '[{"n":1}, oops, {"n":3},\n {"n":4}]';
    for (const chunk of [1, 5, 4096]) {
      const pos = { units: 0 };
      const issues = new IssueLog();
      expect(await collect(readJsonArray(bytesToStream(enc.encode(text), chunk), issues, { position: pos }), pos)).toEqual([
        ['item 1 (line 1)', 1],
        ['item 3 (line 1)', 3],
        ['item 4 (line 2)', 4],
      ]);
      expect(issues.total).toBe(1);
      const later = new IssueLog();
      expect(await collect(readJsonArray(bytesToStream(enc.encode(text), chunk), later, { position: pos, skipItems: 2 }), pos)).toEqual([
        ['item 3 (line 1)', 3],
        ['item 4 (line 2)', 4],
      ]);
      expect(later.total).toBe(0);
    }
  });

  it('Parquet: the position is the row index + 1; endRow stops early', async () => {
    const buf = parquetWriteBuffer({ columnData: [{ name: 'n', data: [0, 1, 2, 3, 4, 5, 6] }], rowGroupSize: 3 });
    const file = { byteLength: buf.byteLength, slice: async (s: number, e?: number) => buf.slice(s, e) };
    const pos = { units: 0 };
    expect(await collect(readParquet(file, { startRow: 2, endRow: 5, position: pos }), pos)).toEqual([
      ['row 2', 3],
      ['row 3', 4],
      ['row 4', 5],
    ]);
  });
});
