// Where an export's files go, and the loop that streams them there. A sink writes each file under a
// temporary name (`name.partial`, or the browser's own swap file) and gives the files their final
// names only in commit(), after every byte of every file is written; discard() removes whatever the
// export started. So a cancelled or failed export leaves nothing that looks complete.
//
// Implementations: sink-node.ts (a folder, for the headless runner and tests), sink-browser.ts (File
// System Access API handles and the Origin Private File System), memorySink() below (tests).

import { ExportError, isAbort, isDiskFull, isExportError } from './export-job-errors.ts';
import { ExportProgressMeter, type ExportProgress } from './export-job-progress.ts';
import type { ExportFile } from './export-files.ts';
import { formatBytes } from '../util/format.ts';

export interface SinkFile {
  write(chunk: Uint8Array): Promise<void>;
  /** Every byte is written (the file still has its temporary name). */
  close(): Promise<void>;
}

export interface ExportSink {
  /** Where the files go, for people: "/tmp/out", "the folder you picked (Downloads)". */
  readonly where: string;
  /** What to do when it is full (the browser's quota differs from a disk). */
  readonly fullAdvice?: string;
  /** Starts file `name` (a plain file name) under a temporary name. */
  create(name: string, size?: number): Promise<SinkFile>;
  /** Gives every closed file its final name. */
  commit(): Promise<void>;
  /** Removes every file this export started, committed or not; resolves to the names it could
   * not remove (never rejects). */
  discard(): Promise<string[]>;
}

export interface WriteExportOptions {
  signal?: AbortSignal;
  onProgress?: (p: ExportProgress) => void;
  /** Bytes all files add up to, for progress (default: the sum of their sizes). */
  totalBytes?: number;
  /** Milliseconds between progress reports (default 250). */
  progressIntervalMs?: number;
}

export interface WrittenFile {
  name: string;
  bytes: number;
}

export interface WriteExportResult {
  files: WrittenFile[];
  bytes: number;
  seconds: number;
}

/** A plain file name: no folders, nothing that could climb out of the destination. */
export function checkFileName(name: string): void {
  if (!name || name === '.' || name === '..' || /[/\\\u0000]/.test(name)) {
    throw new ExportError('bad-request', `"${name}" is not a plain file name`);
  }
}

/** The sink threw: tells it apart from a failure to produce the bytes. */
class SinkFailure {
  constructor(
    readonly error: unknown,
    readonly action: string,
  ) {}
}

async function sinkStep<T>(action: string, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    throw new SinkFailure(e, action);
  }
}

function abortReason(signal: AbortSignal): ExportError {
  return new ExportError('cancelled', 'Export cancelled.', { cause: signal.reason });
}

/** Resolves the next chunk, or rejects as soon as the signal aborts (a quantizer may be busy for
 * seconds on one tensor; cancel must not wait for it). */
function nextOrAbort(it: AsyncIterator<Uint8Array>, signal: AbortSignal | undefined): Promise<IteratorResult<Uint8Array>> {
  const next = it.next();
  if (!signal) return next;
  if (signal.aborted) {
    next.catch(() => undefined);
    return Promise.reject(abortReason(signal));
  }
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      next.catch(() => undefined);
      reject(abortReason(signal));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    next.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

/**
 * Writes the files to the sink one after another, chunk by chunk as they are produced, then commits.
 * On cancel or any failure the sink discards what was started and the error (an ExportError) says
 * what happened, how far it got and what to do.
 */
export async function writeExport(files: readonly ExportFile[], sink: ExportSink, opts: WriteExportOptions = {}): Promise<WriteExportResult> {
  const started = performance.now();
  const { signal } = opts;
  const total = opts.totalBytes ?? files.reduce((s, f) => s + (f.size ?? 0), 0);
  const meter = new ExportProgressMeter(total, files.length, opts.onProgress, opts.progressIntervalMs);
  const written: WrittenFile[] = [];
  let current: string | null = null;
  try {
    for (const f of files) checkFileName(f.name);
    for (const f of files) {
      if (signal?.aborted) throw abortReason(signal);
      current = f.name;
      meter.phase('writing', f.name);
      const out = await sinkStep('create', () => sink.create(f.name, f.size));
      let n = 0;
      const it = f.chunks()[Symbol.asyncIterator]();
      try {
        for (;;) {
          const { value, done } = await nextOrAbort(it, signal);
          if (done) break;
          if (value.length === 0) continue;
          await sinkStep('write', () => out.write(value));
          n += value.length;
          meter.bytes(value.length);
        }
      } catch (e) {
        it.return?.()?.catch(() => undefined); // stop the producer (it may be suspended mid-tensor)
        throw e;
      }
      await sinkStep('close', () => out.close());
      if (f.size !== undefined && n !== f.size) {
        throw new ExportError('failed', `${f.name} came out as ${n} bytes, ${f.size} were expected (a bug: please report it).`);
      }
      written.push({ name: f.name, bytes: n });
      meter.fileDone();
    }
    if (signal?.aborted) throw abortReason(signal);
    current = null;
    meter.phase('finishing', null);
    await sinkStep('commit', () => sink.commit());
    meter.phase('done', null);
  } catch (e) {
    const left = await sink.discard();
    throw describeFailure(e, { signal, file: current, done: meter.snapshot.bytesDone, total, sink, left });
  }
  return { files: written, bytes: written.reduce((s, f) => s + f.bytes, 0), seconds: (performance.now() - started) / 1000 };
}

function describeFailure(
  thrown: unknown,
  c: { signal?: AbortSignal; file: string | null; done: number; total: number; sink: ExportSink; left: string[] },
): ExportError {
  const cleanup =
    c.left.length === 0
      ? 'The partial files were removed.'
      : `These partial files could not be removed; delete them by hand: ${c.left.join(', ')}.`;
  const progress = `${formatBytes(c.done)} of ${formatBytes(c.total)}`;
  const error = thrown instanceof SinkFailure ? thrown.error : thrown;
  if (c.signal?.aborted || isAbort(error)) {
    return new ExportError('cancelled', `Export cancelled after ${progress}. ${cleanup}`, { cause: error });
  }
  if (isDiskFull(error)) {
    const advice = c.sink.fullAdvice ?? `Free at least ${formatBytes(Math.max(0, c.total - c.done))} on that disk, or pick a folder on another drive, then export again.`;
    return new ExportError('disk-full', `Out of space after ${progress}: ${c.sink.where} is full. ${cleanup} ${advice}`, { cause: error });
  }
  const what = (error as Error)?.message ?? String(error);
  if (thrown instanceof SinkFailure) {
    const step = thrown.action === 'commit' ? 'Renaming the finished files' : `Writing ${c.file ?? 'the export'}`;
    return new ExportError(
      'write-failed',
      `${step} in ${c.sink.where} failed: ${what}. ${cleanup} Check that the destination still exists and can be written to, then export again.`,
      { cause: error },
    );
  }
  if (isExportError(error)) return new ExportError(error.reason, `${error.message} ${cleanup}`, { cause: error });
  return new ExportError('failed', `The export failed while producing ${c.file ?? 'its files'}: ${what}. ${cleanup}`, { cause: error });
}

// ---------------------------------------------------------------------------------------------

/** Files kept in memory (tests, small exports): `files` holds them once committed. */
export class MemorySink implements ExportSink {
  readonly where = 'memory';
  /** Committed files by name. */
  readonly files = new Map<string, Uint8Array>();
  /** Files being written or closed, not yet committed. */
  readonly partial = new Map<string, Uint8Array[]>();

  async create(name: string): Promise<SinkFile> {
    const parts: Uint8Array[] = [];
    this.partial.set(name, parts);
    return {
      write: async (chunk) => {
        parts.push(chunk.slice());
      },
      close: async () => undefined,
    };
  }

  async commit(): Promise<void> {
    for (const [name, parts] of this.partial) {
      const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
      let o = 0;
      for (const p of parts) {
        out.set(p, o);
        o += p.length;
      }
      this.files.set(name, out);
    }
    this.partial.clear();
  }

  async discard(): Promise<string[]> {
    this.partial.clear();
    this.files.clear();
    return [];
  }
}
