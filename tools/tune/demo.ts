// The demo model and dataset that ship with the app (public/demo, described by its manifest.json),
// found from the runner's own location: dist-tune/tune.js when built, tools/tune/*.ts from sources.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface DemoManifest {
  model: { id: string; name: string; path: string; files: { path: string; size: number }[] };
  datasets: { id: string; name: string; path: string; rows: number; bytes: number }[];
}

export interface DemoFiles {
  /** public/ (the manifest's paths are relative to it). */
  publicDir: string;
  manifest: DemoManifest;
}

let found: DemoFiles | null = null;

export function demoFiles(): DemoFiles {
  if (found) return found;
  const here = fileURLToPath(new URL('.', import.meta.url));
  const candidates = [join(here, '..', 'public'), join(here, '..', '..', 'public'), join(process.cwd(), 'public')];
  const publicDir = candidates.find((d) => existsSync(join(d, 'demo', 'manifest.json')));
  if (!publicDir) throw new Error(`The demo files (public/demo/manifest.json) are not next to the runner; looked in ${candidates.join(', ')}.`);
  const manifest = JSON.parse(readFileSync(join(publicDir, 'demo', 'manifest.json'), 'utf8')) as DemoManifest;
  found = { publicDir, manifest };
  return found;
}
