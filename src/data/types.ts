// Shared shapes of the data pipeline: records in, normalised examples, tokenized examples.

/** A record as read from a file: one JSON object (JSONL line, array item, Parquet row). */
export type DataRecord = Record<string, unknown>;

/** A record with where it came from (for skip reports). */
export interface SourceRecord {
  /** Human-readable position, e.g. "line 12", "item 3 (line 40)", "row 1001". */
  where: string;
  value: DataRecord;
}

export type Role = 'system' | 'user' | 'assistant';

export interface Message {
  role: Role;
  content: string;
}

/** A normalised example: a conversation, or plain text for continued pretraining. */
export type Example = { messages: Message[] } | { text: string };

/** Tokens of one example with its per-token loss mask. */
export interface TokenizedExample {
  input_ids: Int32Array;
  /**
   * 1 where the token is a training target (predicted from the token before it), else 0.
   * The first token of an example is never a target (nothing precedes it inside the document).
   */
  labels_mask: Uint8Array;
  /** True when the example was cut to max_seq_length. */
  truncated: boolean;
}

/** Either a value, or the reason it was rejected (counted, never thrown). */
export type Outcome<T> = { ok: true; value: T } | { ok: false; reason: string; detail?: string };

/**
 * Where a reader is in its source: source units (JSONL lines, JSON array items, Parquet rows)
 * consumed up to and including the record it yielded last. A reader updates it just before each
 * yield, so a consumer that stops after a record can resume with `skip = units`.
 */
export interface ReadPosition {
  units: number;
}
