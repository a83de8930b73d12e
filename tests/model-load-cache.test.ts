// Model loads and the cache: a connection dropped mid-shard resumes and gives the same model, a
// failed load leaves its bytes for the next one to resume from, a second load downloads nothing,
// an offline reload uses the cached listing, cancelling stops, and a full disk says what to do.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../src/engine/gpu.ts';
import { Kernels } from '../src/engine/kernels.ts';
import { loadModel, unloadModel, type LoadDeps, type LoadProgress, type ModelSourceSpec } from '../src/engine/loader.ts';
import { MemoryCacheStore, ModelCache } from '../src/io/cache.ts';
import { HubError } from '../src/io/hub.ts';
import { startMockHub, type MockHub } from '../tools/mock-hub/server.ts';
import { testGpu } from './gpu/device.ts';
import { byteRequests, expectMatchesCheckpoint, GATED_DIR, openCheckpoint, TINY_DIR } from './model-load-helpers.ts';

let gpu: Gpu;
let kernels: Kernels;
let hub: MockHub;

beforeAll(async () => {
  gpu = await testGpu();
  kernels = new Kernels(gpu);
  hub = await startMockHub();
});
afterAll(() => hub?.close());
afterEach(() => {
  hub.faults.clear();
  hub.requests.length = 0;
});

const TINY = 'webtune/tiny-random-llama';
const WEIGHTS = 'model.safetensors';
const depsWith = (cache: ModelCache): LoadDeps => ({ gpu, kernels, cache, hub: { retryDelayMs: 1 } });
const fromHub = (id: string, token?: string): ModelSourceSpec => ({ kind: 'hub', id, endpoint: hub.url, token });
const memoryCache = (): ModelCache => new ModelCache(new MemoryCacheStore());

async function rejection(p: Promise<unknown>): Promise<Error> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(Error);
  return e as Error;
}

describe('resuming downloads', () => {
  it('a connection dropped mid-shard resumes from the next byte; the model is identical', async () => {
    hub.faults.drop({ file: WEIGHTS, repo: TINY, afterBytes: 700 });
    const model = await loadModel(depsWith(memoryCache()), fromHub(TINY));
    const ranges = byteRequests(hub.requests, WEIGHTS).map((r) => r.range);
    expect(ranges).toContain('bytes=700-');
    await expectMatchesCheckpoint(gpu.device, model, await openCheckpoint(TINY_DIR, [WEIGHTS]));
    unloadModel(model);
  });

  it('a load that fails mid-shard keeps its bytes; the next load asks only for the rest', async () => {
    const cache = memoryCache();
    // 600 bytes, then connections that drop at once until the client gives up.
    hub.faults.drop({ file: WEIGHTS, repo: TINY, afterBytes: 600 });
    hub.faults.drop({ file: WEIGHTS, repo: TINY, afterBytes: 0, times: 10 });
    const e = await rejection(loadModel(depsWith(cache), fromHub(TINY)));
    expect(e).toBeInstanceOf(HubError);
    expect((e as HubError).kind).toBe('offline');
    expect(e.message).toMatch(/stopped at byte 600/);
    const partial = (await cache.list()).find((f) => f.path === WEIGHTS)!;
    expect(partial).toMatchObject({ repo: TINY, bytes: 600, complete: false });
    expect(partial.revision).toMatch(/^[0-9a-f]{40}$/);

    hub.faults.clear();
    hub.requests.length = 0;
    const events: LoadProgress[] = [];
    const model = await loadModel(depsWith(cache), fromHub(TINY), { onProgress: (p) => events.push(p) });
    expect(byteRequests(hub.requests, WEIGHTS).map((r) => r.range)).toContain('bytes=600-');
    expect(byteRequests(hub.requests, WEIGHTS).map((r) => r.range)).not.toContain(undefined);
    await expectMatchesCheckpoint(gpu.device, model, await openCheckpoint(TINY_DIR, [WEIGHTS]));
    expect(model.summary.cachedBytes).toBe(600);
    expect(model.summary.downloadedBytes).toBe(partial.size - 600);
    expect((await cache.list()).find((f) => f.path === WEIGHTS)).toMatchObject({ complete: true, bytes: partial.size });
    unloadModel(model);
  });
});

describe('the second load', () => {
  it('comes from the cache: no file is requested, only the repo listing', async () => {
    const cache = memoryCache();
    unloadModel(await loadModel(depsWith(cache), fromHub('webtune/tiny-gated-llama', 'hf_mock_ok')));
    const listed = await cache.list();
    expect(listed.map((f) => f.path)).toEqual([
      'config.json',
      'model-00001-of-00002.safetensors',
      'model-00002-of-00002.safetensors',
      'model.safetensors.index.json',
      'tokenizer_config.json',
    ]);
    expect(listed.every((f) => f.complete && f.bytes === f.size && f.repo === 'webtune/tiny-gated-llama')).toBe(true);

    hub.requests.length = 0;
    const model = await loadModel(depsWith(cache), fromHub('webtune/tiny-gated-llama', 'hf_mock_ok'));
    expect(hub.requests.map((r) => r.url.split('?')[0])).toEqual(['/api/models/webtune/tiny-gated-llama/revision/main']);
    expect(model.summary.downloadedBytes).toBe(0);
    expect(model.summary.cachedBytes).toBeGreaterThan(0);
    await expectMatchesCheckpoint(
      gpu.device,
      model,
      await openCheckpoint(GATED_DIR, ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']),
    );
    unloadModel(model);
  });

  it('works offline from the cached listing of the revision', async () => {
    const cache = memoryCache();
    unloadModel(await loadModel(depsWith(cache), fromHub(TINY)));
    const model = await loadModel(depsWith(cache), { kind: 'hub', id: TINY, endpoint: 'http://127.0.0.1:9' });
    expect(model.summary.offline).toBe(true);
    expect(model.summary.warnings.join(' ')).toMatch(/could not be reached/);
    await expectMatchesCheckpoint(gpu.device, model, await openCheckpoint(TINY_DIR, [WEIGHTS]));
    unloadModel(model);
  });

  it('clearing a repo empties the cache of it', async () => {
    const cache = memoryCache();
    unloadModel(await loadModel(depsWith(cache), fromHub(TINY)));
    unloadModel(await loadModel(depsWith(cache), fromHub('webtune/tiny-gated-llama', 'hf_mock_ok')));
    const freed = await cache.clear(TINY);
    expect(freed).toBeGreaterThan(0);
    expect(new Set((await cache.list()).map((f) => f.repo))).toEqual(new Set(['webtune/tiny-gated-llama']));
    await cache.clear();
    expect(await cache.list()).toEqual([]);
  });
});

describe('cancel and storage', () => {
  it('cancelling a stalled download rejects with AbortError and keeps the bytes so far', async () => {
    const cache = memoryCache();
    hub.faults.stall({ file: WEIGHTS, repo: TINY, afterBytes: 500 });
    const ctrl = new AbortController();
    const load = loadModel(depsWith(cache), fromHub(TINY), {
      signal: ctrl.signal,
      onProgress: (p) => {
        if (p.phase === 'download' && p.bytesDone >= 500) ctrl.abort();
      },
    });
    const e = await rejection(load);
    expect(e.name).toBe('AbortError');
    expect((await cache.list()).find((f) => f.path === WEIGHTS)).toMatchObject({ bytes: 500, complete: false });
  });

  it('not enough browser storage: says how much is needed and what to free', async () => {
    const cache = new ModelCache(new MemoryCacheStore({ quotaBytes: 1500 }));
    const e = await rejection(loadModel(depsWith(cache), fromHub(TINY)));
    expect(e.name).toBe('StorageQuotaError');
    expect(e.message).toMatch(/^Not enough browser storage: this model needs [\d.]+ GB, [\d.]+ GB is free\. Free space by clearing cached models in the Model tab, or /);
    expect(byteRequests(hub.requests, WEIGHTS)).toEqual([]);
  });
});
