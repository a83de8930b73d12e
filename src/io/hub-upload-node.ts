// Node's spool for Hub uploads: a streamed export written once to a temporary file, then read
// from disk (fs.openAsBlob) for hashing and sending, so a GGUF of many GB never sits in memory.

import { openAsBlob } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Spool } from './hub-upload.ts';

/** Spools into a fresh folder under `dir` (default: the system's temporary folder). */
export function nodeFileSpool(dir: string = tmpdir()): Spool {
  return async (file, signal) => {
    const folder = await mkdtemp(join(dir, 'hub-upload-'));
    const path = join(folder, 'file');
    const handle = await open(path, 'w');
    try {
      for await (const chunk of file.chunks()) {
        signal?.throwIfAborted();
        let off = 0;
        while (off < chunk.length) off += (await handle.write(chunk, off, chunk.length - off)).bytesWritten;
      }
    } catch (e) {
      await handle.close();
      await rm(folder, { recursive: true, force: true });
      throw e;
    }
    await handle.close();
    return { blob: await openAsBlob(path), release: () => rm(folder, { recursive: true, force: true }) };
  };
}
