// Errors of the data pipeline that a person can act on. `reason` survives the trip from the
// worker to the UI (workers/expose.ts keeps a string `reason`), so the UI can tell them apart.

export type DataErrorReason =
  | 'unknown-file-kind' // not JSONL, JSON or Parquet
  | 'no-format' // no known format fits the records
  | 'no-records' // empty, or every record was skipped
  | 'quota' // the browser's storage is full
  | 'hub' // a Hub dataset could not be read
  | 'options' // an option is out of range
  | 'tokenizer'; // the tokenizer could not be loaded

export class DataError extends Error {
  override readonly name = 'DataError';
  constructor(
    readonly reason: DataErrorReason,
    message: string,
  ) {
    super(message);
  }
}

/** The message a person sees when no format fits: what was found and what to map. */
export function noFormatMessage(columns: readonly string[]): string {
  const found = columns.length > 0 ? `the file has columns [${columns.join(', ')}]` : 'the records have no fields';
  return `No conversations found: ${found}; map one of them as ShareGPT/OpenAI messages, Alpaca or text.`;
}

export function isAbortError(e: unknown): boolean {
  return (e as { name?: string } | null)?.name === 'AbortError';
}

export function abortError(signal?: AbortSignal): unknown {
  return signal?.reason ?? new DOMException('The operation was aborted.', 'AbortError');
}
