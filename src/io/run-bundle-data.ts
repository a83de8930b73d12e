// The prepared dataset as a run bundle writes it: the conversations of every packed row, in the
// order the studio trained on them, as JSONL, plus what lets train.py rebuild the very same rows
// (how many documents each row holds) and prove it did (a hash of the rows' tokens and masks).
//
// The stored shards hold tokens, not text. The text comes from reading the source again and
// tokenizing each record as the preparation did; each document of each row is then found by its
// tokens. A document that matches no record means the source or the tokenizer changed since the
// preparation: that is an error, never a silent mismatch.

import { normalizeRecord, type FormatMapping } from '../data/formats.ts';
import type { IssueSink } from '../data/issues.ts';
import type { RecordSource } from '../data/record-source.ts';
import { tokenizeExample, type TokenizeContext, type TokenizeOptions } from '../data/tokenize.ts';
import type { Example, ReadPosition } from '../data/types.ts';

export class BundleDataError extends Error {
  override name = 'BundleDataError';
}

/** One record of the source with the token ids the preparation gave it (after truncation). */
export interface BundleRecord {
  example: Example;
  inputIds: ArrayLike<number>;
}

/** Packed rows as the shards store them (ShardBlock's fields the bundle reads). */
export interface RowBlock {
  rows: number;
  seqLength: number;
  input_ids: ArrayLike<number>;
  labels_mask: ArrayLike<number>;
  segment_ids: ArrayLike<number>;
}

export interface StudioRow {
  input_ids: number[];
  labels_mask: number[];
}

/** One split (train or validation) as written into the bundle. */
export interface BundleSplit {
  /** JSONL lines, {"messages": [...]} or {"text": "..."}, in training order. */
  lines: string[];
  /** Documents of each packed row, in order: row k holds the next docsPerRow[k] lines. */
  docsPerRow: number[];
  seqLength: number;
  rows: number;
  tokens: number;
  trainedTokens: number;
  /** SHA-256 over the SHA-256 of each row's bytes (input_ids int32 LE, then labels_mask uint8). */
  rowsSha256: string;
  /** The first rows whole (the first optimizer step's), so train.py can show where it differs. */
  firstRows: StudioRow[];
}

export interface BundleData {
  train: BundleSplit;
  validation: BundleSplit | null;
}

/** The JSONL line of an example: what train.py and Axolotl read. */
export function exampleLine(e: Example): string {
  return 'text' in e ? JSON.stringify({ text: e.text }) : JSON.stringify({ messages: e.messages.map((m) => ({ role: m.role, content: m.content })) });
}

/** A 64-bit hash of a token sequence, with its length: the key a document is found by. */
function tokenKey(ids: ArrayLike<number>, from = 0, to = ids.length): string {
  let h1 = 0x811c9dc5;
  let h2 = 0x9747b28c;
  for (let i = from; i < to; i++) {
    const v = ids[i] | 0;
    h1 = Math.imul(h1 ^ v, 0x01000193);
    h2 = Math.imul(h2 ^ v, 0x5bd1e995);
    h2 ^= h2 >>> 15;
  }
  return `${to - from}:${(h1 >>> 0).toString(16)}:${(h2 >>> 0).toString(16)}`;
}

/** Records by the tokens they produce; equal tokens are interchangeable, so each key is a queue. */
class RecordIndex {
  private readonly byKey = new Map<string, string[]>();
  records = 0;

  add(r: BundleRecord): void {
    const key = tokenKey(r.inputIds);
    const list = this.byKey.get(key);
    const line = exampleLine(r.example);
    if (list) list.push(line);
    else this.byKey.set(key, [line]);
    this.records++;
  }

  take(ids: ArrayLike<number>, from: number, to: number): string | undefined {
    const list = this.byKey.get(tokenKey(ids, from, to));
    return list?.shift();
  }
}

async function sha256(bytes: Uint8Array<ArrayBuffer>): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
}

const hex = (b: Uint8Array): string => [...b].map((x) => x.toString(16).padStart(2, '0')).join('');

/** The bytes a row is hashed as (train.py builds the same: struct '<i' per id, then the mask). */
function rowBytes(ids: ArrayLike<number>, mask: ArrayLike<number>, from: number, n: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(n * 5);
  const view = new DataView(out.buffer);
  for (let i = 0; i < n; i++) view.setInt32(i * 4, ids[from + i], true);
  for (let i = 0; i < n; i++) out[n * 4 + i] = mask[from + i] ? 1 : 0;
  return out;
}

async function splitFromRows(blocks: AsyncIterable<RowBlock>, index: RecordIndex, name: string, firstRows: number): Promise<BundleSplit | null> {
  const lines: string[] = [];
  const docsPerRow: number[] = [];
  const rowHashes: Uint8Array[] = [];
  const first: StudioRow[] = [];
  let seqLength = 0;
  let tokens = 0;
  let trainedTokens = 0;
  for await (const b of blocks) {
    if (b.rows === 0) continue;
    if (seqLength !== 0 && b.seqLength !== seqLength) throw new BundleDataError(`The ${name} rows change length from ${seqLength} to ${b.seqLength} tokens.`);
    seqLength = b.seqLength;
    for (let r = 0; r < b.rows; r++) {
      const at = r * seqLength;
      let docs = 0;
      let start = at;
      while (start < at + seqLength && b.segment_ids[start] !== 0) {
        const seg = b.segment_ids[start];
        let end = start + 1;
        while (end < at + seqLength && b.segment_ids[end] === seg) end++;
        const line = index.take(b.input_ids, start, end);
        if (line === undefined) {
          throw new BundleDataError(
            `Row ${docsPerRow.length + 1} of the ${name} split holds a document of ${end - start} tokens that no record of the source gives. ` +
              'The source, the tokenizer or the template changed since the dataset was prepared: prepare it again, then export the bundle.',
          );
        }
        lines.push(line);
        docs++;
        tokens += end - start;
        start = end;
      }
      for (let i = at; i < at + seqLength; i++) trainedTokens += b.labels_mask[i] ? 1 : 0;
      docsPerRow.push(docs);
      rowHashes.push(await sha256(rowBytes(b.input_ids, b.labels_mask, at, seqLength)));
      if (first.length < firstRows) {
        first.push({
          input_ids: Array.from({ length: seqLength }, (_, i) => b.input_ids[at + i]),
          labels_mask: Array.from({ length: seqLength }, (_, i) => (b.labels_mask[at + i] ? 1 : 0)),
        });
      }
    }
  }
  if (docsPerRow.length === 0) return null;
  const all = new Uint8Array(rowHashes.length * 32);
  rowHashes.forEach((h, i) => all.set(h, i * 32));
  return { lines, docsPerRow, seqLength, rows: docsPerRow.length, tokens, trainedTokens, rowsSha256: hex(await sha256(all)), firstRows: first };
}

export interface BundleDataInput {
  /** Every record the preparation kept, tokenized as it did (tokenizedRecords). Order does not matter. */
  records: AsyncIterable<BundleRecord>;
  /** The train split's rows in stored (training) order. */
  train: AsyncIterable<RowBlock>;
  validation?: AsyncIterable<RowBlock>;
  /** Rows kept whole for train.py's token check (default 16). */
  firstRows?: number;
}

/** Finds the conversation of every document of every row. Throws BundleDataError on a mismatch. */
export async function bundleData(input: BundleDataInput): Promise<BundleData> {
  const index = new RecordIndex();
  for await (const r of input.records) index.add(r);
  const firstRows = input.firstRows ?? 16;
  const train = await splitFromRows(input.train, index, 'train', firstRows);
  if (!train) throw new BundleDataError('The prepared dataset has no training rows.');
  const validation = input.validation ? await splitFromRows(input.validation, index, 'validation', 0) : null;
  return { train, validation };
}

/**
 * The records of a source, normalised and tokenized exactly as prepareDataset does (same mapping,
 * template, tokenizer and options); records it skipped are skipped here too.
 */
export async function* tokenizedRecords(
  source: RecordSource,
  mapping: FormatMapping,
  ctx: TokenizeContext,
  options: TokenizeOptions,
  signal?: AbortSignal,
): AsyncGenerator<BundleRecord> {
  const ignore: IssueSink = { add: () => undefined };
  const position: ReadPosition = { units: 0 };
  for await (const rec of source.read({ skip: 0, issues: ignore, position, signal })) {
    const normal = normalizeRecord(rec.value, mapping);
    if (!normal.ok) continue;
    const t = tokenizeExample(normal.value, ctx, options);
    if (!t.ok) continue;
    yield { example: normal.value, inputIds: t.value.example.input_ids };
  }
}
