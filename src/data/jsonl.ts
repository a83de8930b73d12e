// Streaming JSON Lines reader: one JSON object per line, LF or CRLF, blank lines ignored.
// Lines are cut on the bytes and each one is decoded whole, strictly: a line that is not valid
// UTF-8 is skipped (never read with replacement characters), while a character whose bytes are
// split across stream chunks is simply joined. A line longer than the limit is dropped as it
// streams, so it never sits in memory. Every bad line is counted in the IssueLog with its line
// number, and the stream goes on.

import { shorten } from './issues.ts';
import type { IssueSink } from './issues.ts';
import { firstInvalidUtf8 } from './utf8.ts';
import type { DataRecord, ReadPosition, SourceRecord } from './types.ts';
import { formatBytes } from '../util/format.ts';

export interface JsonlOptions {
  /** A line longer than this many bytes is skipped without being kept or parsed. */
  maxLineBytes?: number;
  /** Lines 1..skipLines are passed over unparsed and unreported (resuming). */
  skipLines?: number;
  /** Set to the record's line number before each record is yielded. */
  position?: ReadPosition;
}

/** Far above any training example (131072 tokens are well under 2 MB of text). */
export const DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024;

const LF = 0x0a;

export async function* readJsonl(
  stream: ReadableStream<Uint8Array>,
  issues: IssueSink,
  options: JsonlOptions = {},
): AsyncGenerator<SourceRecord> {
  const maxLine = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
  const skip = options.skipLines ?? 0;
  const position = options.position;
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  const partial = new PartialLine();
  let lineNo = 0; // lines completed so far
  let dropping = false; // inside a line that went over the limit

  const complete = (tail: Uint8Array): SourceRecord | null => {
    lineNo++;
    if (dropping) {
      dropping = false;
      return null;
    }
    if (lineNo <= skip) return null;
    if (partial.bytes + tail.length > maxLine) {
      partial.clear();
      tooLong(issues, lineNo, maxLine);
      return null;
    }
    return parseLine(partial.take(tail), lineNo, decoder, issues);
  };

  const reader = stream.getReader();
  try {
    for (;;) {
      const { done, value: chunk } = await reader.read();
      if (done) break;
      let start = 0;
      for (let nl = chunk.indexOf(LF); nl >= 0; nl = chunk.indexOf(LF, start)) {
        const rec = complete(chunk.subarray(start, nl));
        start = nl + 1;
        if (rec) {
          if (position) position.units = lineNo;
          yield rec;
        }
      }
      // The rest of the chunk begins the next line: keep it, unless that line is skipped or dropped.
      if (dropping || lineNo + 1 <= skip || start === chunk.length) continue;
      if (partial.bytes + chunk.length - start > maxLine) {
        partial.clear();
        tooLong(issues, lineNo + 1, maxLine);
        dropping = true;
      } else partial.add(chunk.subarray(start));
    }
    if (partial.bytes > 0) {
      const rec = complete(new Uint8Array(0));
      if (rec) {
        if (position) position.units = lineNo;
        yield rec;
      }
    }
  } finally {
    reader.releaseLock();
  }
}

/** The bytes of a line that spans chunks, joined once when its end arrives. */
class PartialLine {
  private pieces: Uint8Array[] = [];
  bytes = 0;

  add(piece: Uint8Array): void {
    this.pieces.push(piece);
    this.bytes += piece.length;
  }

  /** The whole line (kept pieces + `tail`); leaves it empty. */
  take(tail: Uint8Array): Uint8Array {
    if (this.pieces.length === 0) return tail;
    const line = new Uint8Array(this.bytes + tail.length);
    let at = 0;
    for (const p of this.pieces) {
      line.set(p, at);
      at += p.length;
    }
    line.set(tail, at);
    this.clear();
    return line;
  }

  clear(): void {
    this.pieces = [];
    this.bytes = 0;
  }
}

function tooLong(issues: IssueSink, lineNo: number, maxLine: number): void {
  issues.add('line too long', `line ${lineNo}`, `longer than ${formatBytes(maxLine)}, the limit for one line`);
}

const BOM = [0xef, 0xbb, 0xbf];

function parseLine(bytes: Uint8Array, lineNo: number, decoder: TextDecoder, issues: IssueSink): SourceRecord | null {
  const where = `line ${lineNo}`;
  if (lineNo === 1 && bytes[0] === BOM[0] && bytes[1] === BOM[1] && bytes[2] === BOM[2]) bytes = bytes.subarray(3);
  let raw: string;
  try {
    raw = decoder.decode(bytes);
  } catch {
    const at = firstInvalidUtf8(bytes);
    issues.add('invalid UTF-8', where, `byte ${at + 1} of the line (0x${bytes[at].toString(16).padStart(2, '0')}) is not valid UTF-8`);
    return null;
  }
  const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
  if (line.trim().length === 0) return null;
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (e) {
    issues.add('invalid JSON', where, shorten(errorMessage(e), 120));
    return null;
  }
  if (!isPlainObject(value)) {
    issues.add('not a JSON object', where, `got ${describeJson(value)}`);
    return null;
  }
  return { where, value };
}

export function isPlainObject(v: unknown): v is DataRecord {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function describeJson(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return `a ${typeof v}`;
}

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
