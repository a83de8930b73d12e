// Streaming JSON Lines reader: one JSON object per line, LF or CRLF, blank lines ignored.
// A bad line is skipped and counted in the IssueLog with its line number; the stream goes on.

import { IssueLog, shorten } from './issues.ts';
import { decodeUtf8 } from './text-stream.ts';
import type { DataRecord, ReadPosition, SourceRecord } from './types.ts';

export interface JsonlOptions {
  /** A line longer than this (in UTF-16 code units) is skipped without being parsed. */
  maxLineLength?: number;
  /** Lines 1..skipLines are passed over unparsed and unreported (resuming). */
  skipLines?: number;
  /** Set to the record's line number before each record is yielded. */
  position?: ReadPosition;
}

export const DEFAULT_MAX_LINE_LENGTH = 64 * 1024 * 1024;

export async function* readJsonl(
  stream: ReadableStream<Uint8Array>,
  issues: IssueLog,
  options: JsonlOptions = {},
): AsyncGenerator<SourceRecord> {
  const maxLine = options.maxLineLength ?? DEFAULT_MAX_LINE_LENGTH;
  const skip = options.skipLines ?? 0;
  const position = options.position;
  let pending = '';
  let lineNo = 0;
  let skippingLongLine = false;

  for await (const chunk of decodeUtf8(stream)) {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf('\n', start);
      if (nl < 0) break;
      const piece = chunk.slice(start, nl);
      start = nl + 1;
      lineNo++;
      if (skippingLongLine) {
        skippingLongLine = false;
        pending = '';
        continue;
      }
      const line = pending + piece;
      pending = '';
      if (lineNo <= skip) continue;
      const rec = parseLine(line, lineNo, issues);
      if (rec) {
        if (position) position.units = lineNo;
        yield rec;
      }
    }
    if (!skippingLongLine) {
      // While skipping, only the line break matters: keep the tail short.
      pending = lineNo + 1 <= skip ? '' : pending + chunk.slice(start);
      if (pending.length > maxLine) {
        issues.add('line too long', `line ${lineNo + 1}`, `longer than ${maxLine} characters`);
        skippingLongLine = true;
        pending = '';
      }
    }
  }
  if (!skippingLongLine && pending.length > 0 && lineNo + 1 > skip) {
    const rec = parseLine(pending, lineNo + 1, issues);
    if (rec) {
      if (position) position.units = lineNo + 1;
      yield rec;
    }
  }
}

function parseLine(raw: string, lineNo: number, issues: IssueLog): SourceRecord | null {
  const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
  if (line.trim().length === 0) return null;
  const where = `line ${lineNo}`;
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
