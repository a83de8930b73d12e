// Tokenizing examples in batches, in this thread or in tokenize workers (tokenize-pool.ts). Both
// run tokenizeExample on the same examples with the same template and options; a worker's results
// travel back as one id buffer and one mask buffer per batch (transferred, not copied).

import { tokenizeExample } from './tokenize.ts';
import type { TokenizeContext, TokenizeOptions, TokenizeResult } from './tokenize.ts';
import type { Example, Outcome } from './types.ts';

/** Tokenizes batches of normalised examples; results come back in the batch's order. */
export interface TokenizeExecutor {
  /** Examples per batch. */
  readonly batchExamples: number;
  /** Batches worth keeping in flight while reading on (1: tokenize each batch as it is read). */
  readonly inFlight: number;
  tokenize(examples: readonly Example[]): Outcome<TokenizeResult>[] | Promise<Outcome<TokenizeResult>[]>;
  /** Stops its workers, if any. */
  close(): void;
}

/** One example at a time in this thread: what preparing did before there were workers. */
export function inlineExecutor(ctx: TokenizeContext, options: TokenizeOptions): TokenizeExecutor {
  return {
    batchExamples: 1,
    inFlight: 1,
    tokenize: (examples) => examples.map((e) => tokenizeExample(e, ctx, options)),
    close: () => undefined,
  };
}

type PackedItem =
  | { ok: true; length: number; fullLength: number; misalignedBoundaries: number; truncated: boolean }
  | { ok: false; reason: string; detail?: string };

/** A batch's outcomes as two flat buffers and small per-example facts. */
export interface PackedOutcomes {
  ids: Int32Array;
  masks: Uint8Array;
  items: PackedItem[];
}

export function packOutcomes(outcomes: readonly Outcome<TokenizeResult>[]): PackedOutcomes {
  let total = 0;
  for (const o of outcomes) if (o.ok) total += o.value.example.input_ids.length;
  const ids = new Int32Array(total);
  const masks = new Uint8Array(total);
  let at = 0;
  const items = outcomes.map((o): PackedItem => {
    if (!o.ok) return o.detail === undefined ? { ok: false, reason: o.reason } : { ok: false, reason: o.reason, detail: o.detail };
    const { example, fullLength, misalignedBoundaries } = o.value;
    ids.set(example.input_ids, at);
    masks.set(example.labels_mask, at);
    at += example.input_ids.length;
    return { ok: true, length: example.input_ids.length, fullLength, misalignedBoundaries, truncated: example.truncated };
  });
  return { ids, masks, items };
}

/** The outcomes again; each example's arrays are views of the batch's two buffers. */
export function unpackOutcomes(p: PackedOutcomes): Outcome<TokenizeResult>[] {
  let at = 0;
  return p.items.map((item): Outcome<TokenizeResult> => {
    if (!item.ok) return item;
    const end = at + item.length;
    const example = { input_ids: p.ids.subarray(at, end), labels_mask: p.masks.subarray(at, end), truncated: item.truncated };
    at = end;
    return { ok: true, value: { example, fullLength: item.fullLength, misalignedBoundaries: item.misalignedBoundaries } };
  });
}
