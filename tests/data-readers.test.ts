import { describe, expect, it } from 'vitest';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { IssueLog } from '../src/data/issues.ts';
import { readJsonl } from '../src/data/jsonl.ts';
import { JsonArrayError, readJsonArray } from '../src/data/json-array.ts';
import { blobAsyncBuffer, parquetInfo, readParquet } from '../src/data/parquet.ts';
import { readRecords, sniffFileKind, takeRecords } from '../src/data/source.ts';
import { bytesToStream } from '../src/data/text-stream.ts';
import type { SourceRecord } from '../src/data/types.ts';

const enc = new TextEncoder();

function chunksToStream(chunks: Uint8Array[]): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream<Uint8Array>({
    pull(c) {
      if (i < chunks.length) c.enqueue(chunks[i++]);
      else c.close();
    },
  });
}

async function collect(gen: AsyncIterable<SourceRecord>): Promise<SourceRecord[]> {
  const out: SourceRecord[] = [];
  for await (const r of gen) out.push(r);
  return out;
}

// BOM, CRLF, a blank line, a whitespace-only line, 2-, 3- and 4-byte UTF-8, no final newline.
const JSONL =
  '\uFEFF{"text":"caf\u00e9"}\r\n' +
  '\r\n' +
  '{"text":"\u65e5\u672c","n":1}\n' +
  '   \n' +
  '{"text":"emoji \ud83d\ude00 \\n escaped"}\r\n' +
  '{"conversations":[{"from":"human","value":"a,b]}"}]}';
const JSONL_BYTES = enc.encode(JSONL);
const EXPECTED = [
  { where: 'line 1', value: { text: 'café' } },
  { where: 'line 3', value: { text: '日本', n: 1 } },
  { where: 'line 5', value: { text: 'emoji 😀 \n escaped' } },
  { where: 'line 6', value: { conversations: [{ from: 'human', value: 'a,b]}' }] } },
];

describe('readJsonl', () => {
  it('reads the whole file in one chunk', async () => {
    const issues = new IssueLog();
    expect(await collect(readJsonl(bytesToStream(JSONL_BYTES), issues))).toEqual(EXPECTED);
    expect(issues.total).toBe(0);
  });

  it('gives the same records when split at every byte offset (incl. inside UTF-8 sequences)', async () => {
    expect(JSONL_BYTES.length).toBeGreaterThan(100);
    for (let k = 0; k <= JSONL_BYTES.length; k++) {
      const issues = new IssueLog();
      const recs = await collect(readJsonl(chunksToStream([JSONL_BYTES.slice(0, k), JSONL_BYTES.slice(k)]), issues));
      expect(recs, `split at byte ${k}`).toEqual(EXPECTED);
      expect(issues.total).toBe(0);
    }
  });

  it('gives the same records with 1-byte chunks and with every pair of split points', async () => {
    const ones = Array.from(JSONL_BYTES, (b) => Uint8Array.of(b));
    expect(await collect(readJsonl(chunksToStream(ones), new IssueLog()))).toEqual(EXPECTED);
    const n = JSONL_BYTES.length;
    for (let a = 0; a <= n; a += 7) {
      for (let b = a; b <= n; b += 5) {
        const parts = [JSONL_BYTES.slice(0, a), JSONL_BYTES.slice(a, b), JSONL_BYTES.slice(b)];
        expect(await collect(readJsonl(chunksToStream(parts), new IssueLog())), `splits ${a},${b}`).toEqual(EXPECTED);
      }
    }
  });

  it('skips and counts malformed lines with line numbers, never aborting', async () => {
    const text = [
      '{"text":"ok 1"}',
      '{"text": broken}',
      '[1,2,3]',
      '42',
      '',
      '{"text":"ok 2"}',
      '{"text":"unterminated',
      'null',
      '{"text":"ok 3"}',
    ].join('\n');
    const issues = new IssueLog();
    const recs = await collect(readJsonl(bytesToStream(enc.encode(text), 5), issues));
    expect(recs.map((r) => [r.where, r.value.text])).toEqual([
      ['line 1', 'ok 1'],
      ['line 6', 'ok 2'],
      ['line 9', 'ok 3'],
    ]);
    expect(issues.total).toBe(5);
    expect(issues.count('invalid JSON')).toBe(2);
    expect(issues.count('not a JSON object')).toBe(3);
    expect(issues.examples.map((e) => e.where)).toEqual(['line 2', 'line 3', 'line 4', 'line 7', 'line 8']);
    expect(issues.examples[1].detail).toBe('got an array');
  });

  it('keeps only the first 20 examples but counts all', async () => {
    const text = Array.from({ length: 50 }, (_, i) => (i % 2 ? '{bad' : '{"text":"x"}')).join('\n');
    const issues = new IssueLog();
    const recs = await collect(readJsonl(bytesToStream(enc.encode(text)), issues));
    expect(recs).toHaveLength(25);
    expect(issues.total).toBe(25);
    expect(issues.examples).toHaveLength(20);
    expect(issues.examples[0].where).toBe('line 2');
    expect(issues.summary().byReason).toEqual({ 'invalid JSON': 25 });
  });

  it('skips an over-long line and resumes at the next one, in big and small chunks', async () => {
    const long = '{"text":"' + 'x'.repeat(500) + '"}';
    const text = `{"text":"a"}\n${long}\n{"text":"b"}\n{"text":"${'y'.repeat(89)}"}\n`; // line 4: exactly 100 bytes
    for (const chunk of [7, 64, 1 << 16]) {
      const issues = new IssueLog();
      const recs = await collect(readJsonl(bytesToStream(enc.encode(text), chunk), issues, { maxLineBytes: 100 }));
      expect(recs.map((r) => r.where), `chunks of ${chunk}`).toEqual(['line 1', 'line 3', 'line 4']);
      expect(issues.examples).toEqual([{ where: 'line 2', reason: 'line too long', detail: 'longer than 100 B, the limit for one line' }]);
    }
  });
});

const ARRAY_JSON =
  '\uFEFF \n[\r\n  {"text":"caf\u00e9, [not] {a} \\"bracket\\""},\n' +
  '  {"nested":{"a":[1,{"b":"]"}]},"text":"\ud83d\ude00"},\n' +
  '  {"text": oops},\n' +
  '  7,\n' +
  '  {"text":"last"}\n]\n';

describe('readJsonArray', () => {
  const expected = [
    { where: 'item 1 (line 3)', value: { text: 'café, [not] {a} "bracket"' } },
    { where: 'item 2 (line 4)', value: { nested: { a: [1, { b: ']' }] }, text: '😀' } },
    { where: 'item 5 (line 7)', value: { text: 'last' } },
  ];

  it('streams items and skips malformed ones, at every split offset', async () => {
    const bytes = enc.encode(ARRAY_JSON);
    for (let k = 0; k <= bytes.length; k++) {
      const issues = new IssueLog();
      const recs = await collect(readJsonArray(chunksToStream([bytes.slice(0, k), bytes.slice(k)]), issues));
      expect(recs, `split at ${k}`).toEqual(expected);
      expect(issues.examples.map((e) => [e.where, e.reason])).toEqual([
        ['item 3 (line 5)', 'invalid JSON'],
        ['item 4 (line 6)', 'not a JSON object'],
      ]);
    }
  });

  it('handles an empty array, a trailing comma, trailing text and a truncated file', async () => {
    const run = async (s: string) => {
      const issues = new IssueLog();
      const recs = await collect(readJsonArray(bytesToStream(enc.encode(s), 3), issues));
      return { recs: recs.map((r) => r.value), issues: issues.examples.map((e) => e.reason) };
    };
    expect(await run('[]')).toEqual({ recs: [], issues: [] });
    expect(await run(' [ ] ')).toEqual({ recs: [], issues: [] });
    expect(await run('[{"a":1},]')).toEqual({ recs: [{ a: 1 }], issues: ['invalid JSON'] });
    expect(await run('[{"a":1}] extra')).toEqual({ recs: [{ a: 1 }], issues: ['trailing content'] });
    expect(await run('[{"a":1},{"b":')).toEqual({ recs: [{ a: 1 }], issues: ['invalid JSON'] });
    expect(await run('[{"a":1},')).toEqual({ recs: [{ a: 1 }], issues: ['array not closed'] });
  });

  it('rejects a file that is not an array with a clear error', async () => {
    await expect(collect(readJsonArray(bytesToStream(enc.encode('{"text":"x"}\n')), new IssueLog()))).rejects.toThrow(JsonArrayError);
    await expect(collect(readJsonArray(bytesToStream(enc.encode('{"text":"x"}')), new IssueLog()))).rejects.toThrow(/JSONL/);
    await expect(collect(readJsonArray(bytesToStream(enc.encode('  ')), new IssueLog()))).rejects.toThrow(/empty/);
  });
});

type Conv = { from: string; value: string }[];

function fineTomeParquet(rows: { conversations: Conv; source: string; score: number }[], rowGroupSize: number): ArrayBuffer {
  return parquetWriteBuffer({
    columnData: [
      { name: 'conversations', data: rows.map((r) => r.conversations) },
      { name: 'source', data: rows.map((r) => r.source) },
      { name: 'score', data: rows.map((r) => r.score) },
    ],
    schema: [
      { name: 'root', num_children: 3 },
      { name: 'conversations', repetition_type: 'OPTIONAL', converted_type: 'LIST', num_children: 1 },
      { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
      { name: 'element', repetition_type: 'OPTIONAL', num_children: 2 },
      { name: 'from', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
      { name: 'value', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
      { name: 'source', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
      { name: 'score', type: 'DOUBLE', repetition_type: 'OPTIONAL' },
    ],
    rowGroupSize,
  });
}

describe('readParquet', () => {
  const rows = Array.from({ length: 7 }, (_, i) => ({
    conversations: [
      { from: 'human', value: `question ${i} é` },
      { from: 'gpt', value: `answer ${i}` },
    ] as Conv,
    source: `src${i % 2}`,
    score: 4 + i / 10,
  }));
  const buf = fineTomeParquet(rows, 3); // row groups of 3, 3, 1
  const file = { byteLength: buf.byteLength, slice: async (s: number, e?: number) => buf.slice(s, e) };

  it('round-trips a FineTome-shaped file row group by row group', async () => {
    const { info } = await parquetInfo(file);
    expect(info).toEqual({ rows: 7, rowGroups: 3, columns: ['conversations', 'source', 'score'] });
    const recs = await collect(readParquet(file));
    expect(recs.map((r) => r.where)).toEqual(['row 0', 'row 1', 'row 2', 'row 3', 'row 4', 'row 5', 'row 6']);
    expect(recs.map((r) => r.value)).toEqual(rows);
  });

  it('resumes at a row and reads selected columns', async () => {
    const recs = await collect(readParquet(file, { startRow: 4, columns: ['source'] }));
    expect(recs.map((r) => [r.where, r.value])).toEqual([
      ['row 4', { source: 'src0' }],
      ['row 5', { source: 'src1' }],
      ['row 6', { source: 'src0' }],
    ]);
  });

  it('reads through a Blob-like source (what a dropped File gives)', async () => {
    const blob = new Blob([buf]);
    const recs = await collect(readParquet(blobAsyncBuffer(blob)));
    expect(recs).toHaveLength(7);
    expect(recs[6].value).toEqual(rows[6]);
  });
});

describe('file kind sniffing and readRecords', () => {
  it('sniffs by magic bytes, first character, then extension', () => {
    expect(sniffFileKind('x.bin', enc.encode('PAR1....'))).toBe('parquet');
    expect(sniffFileKind('data.json', enc.encode('\uFEFF  \n{"a":1}'))).toBe('jsonl');
    expect(sniffFileKind('data.jsonl', enc.encode('\r\n [{"a":1}]'))).toBe('json-array');
    expect(sniffFileKind('data.jsonl', new Uint8Array())).toBe('jsonl');
    expect(sniffFileKind('data.JSON', new Uint8Array())).toBe('json-array');
    expect(sniffFileKind('train.parquet', new Uint8Array())).toBe('parquet');
    expect(sniffFileKind('notes.txt', enc.encode('hello'))).toBeNull();
  });

  it('reads a File-like JSONL through readRecords and takes the first records', async () => {
    const file = new File([JSONL_BYTES], 'data.jsonl');
    const head = new Uint8Array(await file.slice(0, 64).arrayBuffer());
    const kind = sniffFileKind(file.name, head);
    expect(kind).toBe('jsonl');
    const issues = new IssueLog();
    expect(await takeRecords(readRecords(file, kind!, issues), 2)).toEqual(EXPECTED.slice(0, 2));
    expect(await collect(readRecords(new File([fineTomeParquet([], 10)], 'empty.parquet'), 'parquet', issues))).toEqual([]);
  });
});
