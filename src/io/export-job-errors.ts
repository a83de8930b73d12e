// Why an export did not happen, in words a person can act on. `reason` survives the trip from the
// worker to the page (workers/expose.ts keeps it), so the Export tab can pick its tone and next step.

export type ExportFailure =
  /** Nothing trained yet (and the base model alone was not asked for). */
  | 'no-adapter'
  /** The model or its tokenizer cannot be written in the asked format (checked before any work). */
  | 'unsupported'
  /** The request itself is wrong (unknown GGUF type, dtype, layout). */
  | 'bad-request'
  /** cancelExport() or the AbortSignal. */
  | 'cancelled'
  /** The disk or the browser's storage quota ran out. */
  | 'disk-full'
  /** The destination refused a write, a rename or a removal (permissions, a vanished folder). */
  | 'write-failed'
  /** Producing the bytes failed (reading the base weights, a quantizer). */
  | 'failed';

export class ExportError extends Error {
  override name = 'ExportError';
  constructor(
    readonly reason: ExportFailure,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function isExportError(e: unknown, reason?: ExportFailure): e is ExportError {
  return e instanceof ExportError && (reason === undefined || e.reason === reason);
}

/** QuotaExceededError (browsers: storage quota, a full disk behind the File System Access API)
 * or ENOSPC / EDQUOT (Node). */
export function isDiskFull(e: unknown): boolean {
  const x = e as { name?: string; code?: string } | null;
  return x?.name === 'QuotaExceededError' || x?.code === 'ENOSPC' || x?.code === 'EDQUOT';
}

export function isAbort(e: unknown): boolean {
  return (e as { name?: string } | null)?.name === 'AbortError' || isExportError(e, 'cancelled');
}
