// Writing a run bundle on disk (Node): a folder with its sub-folders (data/, adapter/, tokenizer/),
// each file written as NAME.partial and renamed when whole, or the single .zip. The export sinks
// take plain file names only, hence this writer for the folder layout.

import { mkdir, open, rename, rm } from 'node:fs/promises';
import { dirname, join, normalize, sep } from 'node:path';
import type { ExportFile } from './export-files.ts';
import type { RunBundlePlan } from './run-bundle.ts';

/** A relative path that stays inside its folder. */
function safePath(dir: string, name: string): string {
  const p = normalize(name);
  if (!name || p.startsWith('..') || p.startsWith(sep) || /[\\\u0000]/.test(name)) throw new Error(`"${name}" is not a path inside the bundle`);
  return join(dir, p);
}

async function writeFile(path: string, file: ExportFile): Promise<number> {
  await mkdir(dirname(path), { recursive: true });
  const partial = `${path}.partial`;
  const handle = await open(partial, 'w');
  let bytes = 0;
  try {
    for await (const chunk of file.chunks()) {
      let off = 0;
      while (off < chunk.length) off += (await handle.write(chunk, off, chunk.length - off)).bytesWritten;
      bytes += chunk.length;
    }
  } catch (e) {
    await handle.close();
    await rm(partial, { force: true });
    throw e;
  }
  await handle.close();
  await rename(partial, path);
  return bytes;
}

/** Writes the plan under `parent`: the folder `parent/plan.name`, or the file `parent/plan.name`. */
export async function writeRunBundle(plan: RunBundlePlan, parent: string): Promise<{ path: string; bytes: number }> {
  const root = join(parent, plan.name);
  let bytes = 0;
  if (plan.layout === 'file') {
    bytes = await writeFile(root, plan.files[0]);
  } else {
    for (const f of plan.files) bytes += await writeFile(safePath(root, f.name), f);
  }
  return { path: root, bytes };
}
