// Bad input in a JSONL file (issue 4): lines that are not UTF-8, and a line of 50 MB.
import { describe, expect, it } from 'vitest';
import { IssueLog } from '../src/data/issues.ts';
import { DEFAULT_MAX_LINE_BYTES, readJsonl } from '../src/data/jsonl.ts';
import { firstInvalidUtf8 } from '../src/data/utf8.ts';
import type { SourceRecord } from '../src/data/types.ts';

const enc = new TextEncoder();
const concat = (...parts: (string | number[])[]): Uint8Array => {
  const arrays = parts.map((p) => (typeof p === 'string' ? enc.encode(p) : Uint8Array.from(p)));
  const out = new Uint8Array(arrays.reduce((n, a) => n + a.length, 0));
  let at = 0;
  for (const a of arrays) {
    out.set(a, at);
    at += a.length;
  }
  return out;
};

function streamOf(chunks: Uint8Array[]): ReadableStream<Uint8Array> {
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

describe('invalid UTF-8 in a JSONL line', () => {
  // Lines 2-5 are broken in four ways; lines 1, 6 and 7 hold 2-, 3- and 4-byte characters.
  const FILE = concat(
    '{"text":"café 日本 🙂"}\n',
    '{"text":"a', [0xff], 'b"}\n', // a byte that never occurs in UTF-8
    '{"text":"', [0xc0, 0xaf], '"}\n', // an overlong "/"
    '{"text":"', [0xed, 0xa0, 0x80], '"}\n', // an encoded surrogate
    '{"text":"cut ', [0xe6, 0x97], '"}\n', // a 3-byte character missing its last byte
    '{"text":"ünïcödé"}\r\n',
    '{"text":"𝄞 end"}',
  );
  const EXPECTED_TEXT = ['café 日本 🙂', 'ünïcödé', '𝄞 end'];

  it('skips each broken line with its line number and where in the line, keeping the good lines', async () => {
    const issues = new IssueLog();
    const recs = await collect(readJsonl(streamOf([FILE]), issues));
    expect(recs.map((r) => [r.where, r.value.text])).toEqual([
      ['line 1', EXPECTED_TEXT[0]],
      ['line 6', EXPECTED_TEXT[1]],
      ['line 7', EXPECTED_TEXT[2]],
    ]);
    expect(issues.summary().byReason).toEqual({ 'invalid UTF-8': 4 });
    expect(issues.examples).toEqual([
      { where: 'line 2', reason: 'invalid UTF-8', detail: 'byte 11 of the line (0xff) is not valid UTF-8' },
      { where: 'line 3', reason: 'invalid UTF-8', detail: 'byte 10 of the line (0xc0) is not valid UTF-8' },
      { where: 'line 4', reason: 'invalid UTF-8', detail: 'byte 10 of the line (0xed) is not valid UTF-8' },
      { where: 'line 5', reason: 'invalid UTF-8', detail: 'byte 14 of the line (0xe6) is not valid UTF-8' },
    ]);
  });

  it('never flags a character whose bytes are split across chunks: the same result at every split offset', async () => {
    for (let k = 0; k <= FILE.length; k++) {
      const issues = new IssueLog();
      const recs = await collect(readJsonl(streamOf([FILE.slice(0, k), FILE.slice(k)]), issues));
      expect(recs.map((r) => r.value.text), `split at byte ${k}`).toEqual(EXPECTED_TEXT);
      expect(issues.summary().byReason, `split at byte ${k}`).toEqual({ 'invalid UTF-8': 4 });
    }
    const ones = Array.from(FILE, (b) => Uint8Array.of(b));
    const issues = new IssueLog();
    expect((await collect(readJsonl(streamOf(ones), issues))).map((r) => r.value.text)).toEqual(EXPECTED_TEXT);
    expect(issues.total).toBe(4);
  });

  it('firstInvalidUtf8 agrees with a strict TextDecoder on every 1- to 3-byte sequence', () => {
    const strict = new TextDecoder('utf-8', { fatal: true });
    const valid = (b: Uint8Array): boolean => {
      try {
        strict.decode(b);
        return true;
      } catch {
        return false;
      }
    };
    const bytes = [0x00, 0x41, 0x7f, 0x80, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xec, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf4, 0xf5, 0xff, 0x9f, 0xa0, 0x8f, 0x90];
    for (const a of bytes) {
      for (const b of bytes) {
        for (const c of bytes) {
          for (const seq of [[a], [a, b], [a, b, c], [a, b, c, 0x80]]) {
            const u = Uint8Array.from(seq);
            expect(firstInvalidUtf8(u) === -1, seq.map((x) => x.toString(16)).join(' ')).toBe(valid(u));
          }
        }
      }
    }
  });
});

describe('a line of 50 MB', () => {
  it('is skipped as it streams, naming the limit, and the lines around it are kept', async () => {
    const MB = 1 << 20;
    const fill = new Uint8Array(MB).fill(0x78); // "x" (one buffer enqueued again and again: the reader must not keep it)
    const chunks = [enc.encode('{"text":"before"}\n{"text":"'), ...Array.from({ length: 50 }, () => fill), enc.encode('"}\n{"text":"after 1"}\n{"text":"after 2"}\n')];
    let i = 0;
    const memory = () => {
      const m = process.memoryUsage();
      return m.heapUsed + m.arrayBuffers;
    };
    const base = memory();
    let peak = base;
    const stream = new ReadableStream<Uint8Array>({
      pull(c) {
        peak = Math.max(peak, memory());
        if (i < chunks.length) c.enqueue(chunks[i++]);
        else c.close();
      },
    });
    const issues = new IssueLog();
    const recs = await collect(readJsonl(stream, issues));
    expect(recs.map((r) => [r.where, r.value.text])).toEqual([
      ['line 1', 'before'],
      ['line 3', 'after 1'],
      ['line 4', 'after 2'],
    ]);
    expect(issues.examples).toEqual([{ where: 'line 2', reason: 'line too long', detail: 'longer than 16.0 MiB, the limit for one line' }]);
    expect(DEFAULT_MAX_LINE_BYTES).toBe(16 * MB);
    // Held at most: the limit's worth of chunk views (16 MiB, here views of one buffer) plus
    // bookkeeping; reading the line whole would take 50 MB or more.
    expect((peak - base) / MB).toBeLessThan(16);
  });
});
