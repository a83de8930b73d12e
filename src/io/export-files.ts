// Export outputs as named files whose bytes are produced on demand, and a streaming .zip of them
// (fflate's Zip: text deflated, binaries stored), so that saving code (File System Access API, a
// chunked download, the headless runner) handles every export the same way.

import { Zip, ZipDeflate, ZipPassThrough } from 'fflate';
import { collectBytes } from '../util/bytes.ts';

export interface ExportFile {
  /** Path inside the export, e.g. "adapter_config.json" or "model-00001-of-00002.safetensors". */
  readonly name: string;
  /** Byte size when known before writing (progress, Content-Length). */
  readonly size?: number;
  /** The contents as chunks; called once per write. */
  chunks(): AsyncIterable<Uint8Array>;
}

export function bytesFile(name: string, bytes: Uint8Array): ExportFile {
  return {
    name,
    size: bytes.length,
    async *chunks() {
      yield bytes;
    },
  };
}

export function textFile(name: string, text: string): ExportFile {
  return bytesFile(name, new TextEncoder().encode(text));
}

/** The whole file in memory (small files, tests). */
export function fileBytes(file: ExportFile): Promise<Uint8Array<ArrayBuffer>> {
  return collectBytes(file.chunks());
}

const TEXT_EXT = /\.(json|md|txt|jinja|yaml|yml)$|(^|\/)Modelfile$/;

export interface ZipOptions {
  /** Modification time written for every entry (default: now). */
  mtime?: Date;
}

/** A .zip of the files as chunks, streamed: each file's chunks pass through as they come. */
export async function* zipStream(files: readonly ExportFile[], opts: ZipOptions = {}): AsyncGenerator<Uint8Array> {
  const queue: Uint8Array[] = [];
  let failure: Error | null = null;
  let finished = false;
  const zip = new Zip((err, chunk, final) => {
    if (err) failure = err;
    else queue.push(chunk);
    if (final) finished = true;
  });
  const drain = function* (): Generator<Uint8Array> {
    if (failure) throw failure;
    while (queue.length > 0) yield queue.shift()!;
  };
  const mtime = opts.mtime ?? new Date();
  for (const f of files) {
    const entry = TEXT_EXT.test(f.name) ? new ZipDeflate(f.name, { level: 6 }) : new ZipPassThrough(f.name);
    entry.mtime = mtime;
    zip.add(entry);
    for await (const c of f.chunks()) {
      if (c.length > 0) entry.push(c, false);
      yield* drain();
    }
    entry.push(new Uint8Array(0), true);
    yield* drain();
  }
  zip.end();
  yield* drain();
  if (!finished) throw new Error('zip: the archive did not finish');
}
