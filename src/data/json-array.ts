// Streaming reader for a file holding one JSON array of objects: `[ {...}, {...}, ... ]`.
// A small splitter tracks string/escape state and bracket depth to cut the text at the array's
// top-level commas; each item is parsed on its own, so memory is bounded by the largest item.
// A malformed item is skipped and counted; a file that is not an array at all is an error.

import { shorten } from './issues.ts';
import type { IssueSink } from './issues.ts';
import { describeJson, errorMessage, isPlainObject } from './jsonl.ts';
import { decodeUtf8 } from './text-stream.ts';
import type { ReadPosition, SourceRecord } from './types.ts';

export const DEFAULT_MAX_ITEM_LENGTH = 64 * 1024 * 1024;

export class JsonArrayError extends Error {}

export interface JsonArrayOptions {
  /** An item longer than this (UTF-16 code units) is skipped and counted. */
  maxItemLength?: number;
  /** Items 1..skipItems are passed over unparsed and unreported (resuming). */
  skipItems?: number;
  /** Set to the record's item number (1-based) before each record is yielded. */
  position?: ReadPosition;
}

const enum State {
  BeforeArray,
  InArray,
  AfterArray,
}

export async function* readJsonArray(
  stream: ReadableStream<Uint8Array>,
  issues: IssueSink,
  options: JsonArrayOptions = {},
): AsyncGenerator<SourceRecord> {
  const maxItem = options.maxItemLength ?? DEFAULT_MAX_ITEM_LENGTH;
  const skip = options.skipItems ?? 0;
  let state = State.BeforeArray;
  let depth = 0; // nesting inside the current item
  let inString = false;
  let escaped = false;
  let item = ''; // text of the current item collected from earlier chunks
  let itemTooLong = false;
  let itemIndex = 0;
  let itemLine = 1;
  let line = 1;
  let sawTrailing = false;
  let itemStarted = false; // a non-whitespace character of the current item was seen

  const finishItem = (text: string): SourceRecord | null => {
    const where = `item ${itemIndex + 1} (line ${itemLine})`;
    itemIndex++;
    if (itemIndex <= skip) {
      itemTooLong = false;
      return null;
    }
    if (itemTooLong) {
      itemTooLong = false;
      issues.add('item too long', where, `longer than ${maxItem} characters`);
      return null;
    }
    const trimmed = text.trim();
    if (trimmed.length === 0) {
      issues.add('invalid JSON', where, 'empty array item');
      return null;
    }
    let value: unknown;
    try {
      value = JSON.parse(trimmed);
    } catch (e) {
      issues.add('invalid JSON', where, shorten(errorMessage(e), 120));
      return null;
    }
    if (!isPlainObject(value)) {
      issues.add('not a JSON object', where, `got ${describeJson(value)}`);
      return null;
    }
    if (options.position) options.position.units = itemIndex;
    return { where, value };
  };

  for await (const chunk of decodeUtf8(stream)) {
    let segStart = 0; // start of the current item's text within this chunk
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk.charCodeAt(i);
      if (c === 10) line++;
      if (state === State.BeforeArray) {
        if (isWhitespace(c)) continue;
        if (c !== 0x5b /* [ */) {
          throw new JsonArrayError(
            `Expected a JSON array ("[") at the start of the file, found ${JSON.stringify(chunk[i])} on line ${line}. ` +
              'For one JSON object per line, use the JSONL reader.',
          );
        }
        state = State.InArray;
        segStart = i + 1;
        itemStarted = false;
        continue;
      }
      if (state === State.AfterArray) {
        if (!isWhitespace(c) && !sawTrailing) {
          sawTrailing = true;
          issues.add('trailing content', `line ${line}`, 'text after the closing "]" was ignored');
        }
        continue;
      }
      // InArray
      if (!itemStarted && !isWhitespace(c) && c !== 0x2c && c !== 0x5d) {
        itemStarted = true;
        itemLine = line;
      }
      if (inString) {
        if (escaped) escaped = false;
        else if (c === 0x5c /* \ */) escaped = true;
        else if (c === 0x22 /* " */) inString = false;
        continue;
      }
      if (c === 0x22) {
        inString = true;
      } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
        depth++;
      } else if ((c === 0x7d /* } */ || c === 0x5d) /* ] */ && depth > 0) {
        depth--;
      } else if (depth === 0 && (c === 0x2c /* , */ || c === 0x5d)) {
        const text = itemTooLong || itemIndex < skip ? '' : item + chunk.slice(segStart, i);
        item = '';
        const closingEmpty = c === 0x5d && itemIndex === 0 && !itemStarted && text.trim().length === 0;
        if (!closingEmpty) {
          // `[1, 2, ]`: a trailing comma leaves an empty last item; report it like JSON.parse would.
          const rec = finishItem(text);
          if (rec) yield rec;
        }
        itemStarted = false;
        segStart = i + 1;
        if (c === 0x5d) state = State.AfterArray;
      }
    }
    if (state === State.InArray && !itemTooLong && itemIndex >= skip) {
      item += chunk.slice(segStart);
      if (item.length > maxItem) {
        itemTooLong = true;
        item = '';
      }
    }
  }
  if (state === State.BeforeArray) throw new JsonArrayError('The file is empty: expected a JSON array.');
  if (state === State.InArray) {
    // A truncated file: keep what was read, report the unfinished tail.
    if (itemStarted || itemTooLong) {
      issues.add('invalid JSON', `item ${itemIndex + 1} (line ${itemLine})`, 'the file ends inside this item');
    } else {
      issues.add('array not closed', `line ${line}`, 'the file ends before the closing "]"');
    }
  }
}

function isWhitespace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}
