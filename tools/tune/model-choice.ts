// `--model`: the demo, a folder on disk, or a Hub repo, as the ModelSourceSpec the loader and the
// exports read (src/io/model-source.ts). Local files are served to it as a folder of URLs (the
// demo kind) by a fetch that reads the disk and honours Range; Hub files go through a ModelCache
// on disk under the cache folder, so a second run downloads nothing.
import { createReadStream, existsSync, readdirSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { MemoryCacheStore, ModelCache } from '../../src/io/cache.ts';
import type { ModelSourceSpec } from '../../src/io/model-source.ts';
import { FsCacheStore } from '../bench/fs-cache.ts';
import { demoFiles } from './demo.ts';
import { UsageError } from './flag-values.ts';

export type FetchFn = (input: string, init?: RequestInit) => Promise<Response>;

export interface ModelChoice {
  spec: ModelSourceSpec;
  /** Reads local files (the demo, a folder); absent for the Hub. */
  fetch?: FetchFn;
  cache: ModelCache;
  /** For people: "the demo model", "the folder /x/y", "meta-llama/… on https://huggingface.co". */
  describe: string;
}

export interface ModelChoiceOptions {
  endpoint: string;
  revision?: string;
  token?: string;
  cacheDir: string;
}

const HUB_ID = /^[\w.-]+(\/[\w.-]+)?$/;

export function chooseModel(arg: string, opts: ModelChoiceOptions): ModelChoice {
  if (arg === 'demo') {
    const { publicDir, manifest } = demoFiles();
    const m = manifest.model;
    return localFolder(join(publicDir, m.path), { id: m.id, name: m.name }, 'the demo model');
  }
  const looksLikePath = /^[.~/]/.test(arg) || existsSync(arg);
  if (looksLikePath) {
    const dir = resolve(arg.replace(/^~(?=\/|$)/, process.env.HOME ?? '~'));
    if (!existsSync(dir)) throw new UsageError(`--model ${arg}: there is no such folder.`);
    if (!statSync(dir).isDirectory()) throw new UsageError(`--model ${arg} is a file; give the folder that holds config.json and the safetensors.`);
    if (!existsSync(join(dir, 'config.json'))) throw new UsageError(`--model ${arg} has no config.json: it is not a transformers model folder.`);
    return localFolder(dir, { id: dir, name: basename(dir) }, `the folder ${dir}`);
  }
  if (!HUB_ID.test(arg)) throw new UsageError(`--model ${arg} is neither a folder nor a Hub model id (owner/name, e.g. unsloth/Llama-3.2-1B-Instruct).`);
  return {
    spec: { kind: 'hub', id: arg, revision: opts.revision, token: opts.token, endpoint: opts.endpoint },
    cache: new ModelCache(new FsCacheStore(join(opts.cacheDir, 'models'))),
    describe: `${arg} on ${opts.endpoint}`,
  };
}

/** A folder's top-level files as a 'demo' source, read from disk. */
function localFolder(dir: string, ident: { id: string; name: string }, describe: string): ModelChoice {
  const files = readdirSync(dir)
    .filter((f) => statSync(join(dir, f)).isFile())
    .map((path) => ({ path, size: statSync(join(dir, path)).size }));
  const baseUrl = `${pathToFileURL(dir).href}/`;
  return {
    spec: { kind: 'demo', id: ident.id, name: ident.name, baseUrl, files },
    fetch: folderFetch(baseUrl, dir),
    // The demo source keeps its own throwaway cache; this one is only for the interface.
    cache: new ModelCache(new MemoryCacheStore()),
    describe,
  };
}

/** fetch() over a folder: `baseUrl + name` is the file `name`, from the byte a Range header asks for. */
export function folderFetch(baseUrl: string, dir: string): FetchFn {
  return async (url, init) => {
    if (!url.startsWith(baseUrl)) return new Response('not found', { status: 404 });
    const path = join(dir, url.slice(baseUrl.length));
    if (!existsSync(path) || !statSync(path).isFile()) return new Response('not found', { status: 404 });
    const range = new Headers(init?.headers).get('range');
    const m = range ? /^bytes=(\d+)-$/.exec(range) : null;
    if (range && !m) return new Response('only open-ended ranges', { status: 416 });
    const start = m ? Number(m[1]) : 0;
    const body = Readable.toWeb(createReadStream(path, { start })) as ReadableStream<Uint8Array>;
    return new Response(body, { status: start > 0 ? 206 : 200 });
  };
}
