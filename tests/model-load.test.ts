// Loading models onto the GPU (Dawn) through the real HubClient against the mock Hub, with an
// in-memory cache: every linear is bit-identical to the CPU NF4 reference of its checkpoint,
// everything else equals its checkpoint; gated, missing and unsupported models fail with messages
// a person can act on, and unsupported ones before any weight is requested.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../src/engine/gpu.ts';
import { Kernels } from '../src/engine/kernels.ts';
import { loadModel, unloadModel, type LoadDeps, type LoadProgress, type ModelSourceSpec } from '../src/engine/loader.ts';
import { readNf4 } from '../src/engine/nf4.ts';
import { MemoryCacheStore, ModelCache } from '../src/io/cache.ts';
import { HubError } from '../src/io/hub.ts';
import { startMockHub, type MockHub } from '../tools/mock-hub/server.ts';
import { testGpu } from './gpu/device.ts';
import {
  byteRequests,
  DEMO_DIR,
  expectMatchesCheckpoint,
  expectSameNf4,
  GATED_DIR,
  openCheckpoint,
  TINY_DIR,
  writeBnbRepo,
  writeUnsupportedRepo,
} from './model-load-helpers.ts';

let gpu: Gpu;
let kernels: Kernels;
let hub: MockHub;
const tmp = mkdtempSync(join(tmpdir(), 'webtune-load-'));
const BNB_DIR = join(tmp, 'bnb');
const UNSUPPORTED_DIR = join(tmp, 'gemma');
let bnbWeights: Awaited<ReturnType<typeof writeBnbRepo>>;

beforeAll(async () => {
  gpu = await testGpu();
  kernels = new Kernels(gpu);
  bnbWeights = await writeBnbRepo(BNB_DIR);
  writeUnsupportedRepo(UNSUPPORTED_DIR);
  hub = await startMockHub({
    mounts: {
      models: {
        'webtune/demo-tiny-llama': DEMO_DIR,
        'webtune/parity-qwen2': 'tests/fixtures/parity/qwen2',
        'webtune/parity-qwen3': 'tests/fixtures/parity/qwen3',
        'webtune/parity-mistral': 'tests/fixtures/parity/mistral',
        'webtune/tiny-bnb-llama': BNB_DIR,
        'webtune/tiny-gemma': UNSUPPORTED_DIR,
      },
    },
  });
});
afterAll(async () => {
  await hub?.close();
  rmSync(tmp, { recursive: true, force: true });
});
afterEach(() => {
  hub.faults.clear();
  hub.requests.length = 0;
});

const deps = (): LoadDeps => ({ gpu, kernels, cache: new ModelCache(new MemoryCacheStore()), hub: { retryDelayMs: 1 } });
const fromHub = (id: string, token?: string): ModelSourceSpec => ({ kind: 'hub', id, endpoint: hub.url, token });

async function rejection(p: Promise<unknown>): Promise<Error> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(Error);
  return e as Error;
}

describe('loading through the Hub client', () => {
  it('the demo: every linear as NF4 bit-identical to the CPU reference, the rest exact', async () => {
    const events: LoadProgress[] = [];
    const t0 = performance.now();
    const model = await loadModel(deps(), fromHub('webtune/demo-tiny-llama'), { onProgress: (p) => events.push(p) });
    const ms = performance.now() - t0;
    console.log(`demo load in Node (Dawn ${gpu.info.f16 ? 'f16' : 'f32'}): ${ms.toFixed(0)} ms`);
    await expectMatchesCheckpoint(gpu.device, model, await openCheckpoint(DEMO_DIR, ['model.safetensors']));
    const s = model.summary;
    expect(s).toMatchObject({ id: 'webtune/demo-tiny-llama', source: 'hub', family: 'llama', quantization: 'nf4', doubleQuant: true, params: 156480 });
    expect(s.revision).toMatch(/^[0-9a-f]{40}$/);
    expect(s.embeddingDtype).toBe(gpu.info.f16 ? 'f16' : 'f32');
    expect(s.embeddingNote).toMatch(gpu.info.f16 ? /f16: this GPU has shader-f16/ : /f32: this GPU has no shader-f16/);
    expect(s.tokenizerFiles).toEqual(['tokenizer.json', 'tokenizer_config.json', 'generation_config.json']);
    expect(model.tokenizerFiles.get('tokenizer.json')).toBe(readFileSync(join(DEMO_DIR, 'tokenizer.json'), 'utf8'));
    expect(s.nf4Bytes).toBeGreaterThan(0);
    expect(s.gpuBytes).toBe(s.nf4Bytes + s.denseBytes);
    expect(s.planLines.join('\n')).toMatch(/base weights \(NF4\)/);
    expect(s.downloadedBytes).toBe(readFileSync(join(DEMO_DIR, 'model.safetensors')).length);
    expect(model.dense.get('model.embed_tokens.weight')?.dtype).toBe(s.embeddingDtype);
    expect(model.dense.get('model.norm.weight')?.dtype).toBe('f32');

    const phases = [...new Set(events.map((e) => e.phase))];
    expect(phases[0]).toBe('config');
    expect(phases).toContain('tokenizer');
    expect(phases).toContain('download');
    expect(phases[phases.length - 1]).toBe('done');
    const last = events[events.length - 1];
    expect(last.tensorsDone).toBe(last.tensorsTotal);
    expect(last.bytesDone).toBe(last.bytesTotal);
    unloadModel(model);
    expect(model.nf4.size + model.dense.size).toBe(0);
  });

  it('the demo from files under a URL (as the app serves it) gives the same weights', async () => {
    const manifest = JSON.parse(readFileSync('public/demo/manifest.json', 'utf8'));
    const source: ModelSourceSpec = {
      kind: 'demo',
      id: manifest.model.id,
      name: manifest.model.name,
      baseUrl: `${hub.url}/webtune/demo-tiny-llama/resolve/main/`,
      files: manifest.model.files,
    };
    const t0 = performance.now();
    const model = await loadModel(deps(), source);
    console.log(`demo load from URL in Node: ${(performance.now() - t0).toFixed(0)} ms`);
    expect(model.summary).toMatchObject({ name: 'Demo (offline)', source: 'demo', revision: null });
    await expectMatchesCheckpoint(gpu.device, model, await openCheckpoint(DEMO_DIR, ['model.safetensors']));
    unloadModel(model);
  });

  it('tied embeddings, no tokenizer.json: loads and says what is missing', async () => {
    const model = await loadModel(deps(), fromHub('webtune/tiny-random-llama'));
    await expectMatchesCheckpoint(gpu.device, model, await openCheckpoint(TINY_DIR, ['model.safetensors']));
    expect(model.dense.has('lm_head.weight')).toBe(false);
    expect(model.summary.warnings.join(' ')).toMatch(/no tokenizer\.json/);
    unloadModel(model);
  });

  it('f32 embeddings on request (the path of GPUs without shader-f16)', async () => {
    const model = await loadModel(deps(), fromHub('webtune/tiny-random-llama'), { embeddingDtype: 'f32', doubleQuant: false });
    expect(model.summary.embeddingDtype).toBe('f32');
    expect(model.summary.doubleQuant).toBe(false);
    await expectMatchesCheckpoint(gpu.device, model, await openCheckpoint(TINY_DIR, ['model.safetensors']), false);
    unloadModel(model);
  });

  it('qwen2 (q/k/v biases) and qwen3 (q_norm/k_norm), f32 checkpoints', async () => {
    for (const name of ['qwen2', 'qwen3', 'mistral']) {
      const model = await loadModel(deps(), fromHub(`webtune/parity-${name}`));
      await expectMatchesCheckpoint(gpu.device, model, await openCheckpoint(`tests/fixtures/parity/${name}`, ['model.safetensors']));
      const dense = [...model.dense.keys()];
      if (name === 'qwen2') expect(dense).toContain('model.layers.1.self_attn.v_proj.bias');
      if (name === 'qwen3') expect(dense).toContain('model.layers.0.self_attn.k_norm.weight');
      expect(model.summary.family).toBe(name);
      unloadModel(model);
    }
  });

  it('a bnb-4bit checkpoint: its NF4 bytes and quant state go to the GPU as stored', async () => {
    const model = await loadModel(deps(), fromHub('webtune/tiny-bnb-llama'));
    expect(model.summary.quantization).toBe('bnb-4bit');
    expect(model.summary.doubleQuant).toBe(true);
    expect(model.nf4.size).toBe(7);
    for (const [name, w] of model.nf4) expectSameNf4(await readNf4(gpu.device, w), bnbWeights.get(name)!, name);
    expect(model.summary.ignoredTensors).toEqual([]);
    unloadModel(model);
  });

  it('a sharded, gated model with an accepted token loads shard by shard', async () => {
    const model = await loadModel(deps(), fromHub('webtune/tiny-gated-llama', 'hf_mock_ok'));
    const shards = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];
    await expectMatchesCheckpoint(gpu.device, model, await openCheckpoint(GATED_DIR, shards));
    for (const s of shards) expect(byteRequests(hub.requests, s).length).toBeGreaterThan(0);
    unloadModel(model);
  });
});

describe('refusals, before any weight is requested', () => {
  it('gated without a token: the licence and a token', async () => {
    const e = await rejection(loadModel(deps(), fromHub('webtune/tiny-gated-llama')));
    expect(e).toBeInstanceOf(HubError);
    expect((e as HubError).kind).toBe('gated');
    expect(e.message).toMatch(/webtune\/tiny-gated-llama is gated: open http:\/\/127\.0\.0\.1:\d+\/webtune\/tiny-gated-llama, accept the licence, then paste a token/);
    expect(byteRequests(hub.requests, 'model-00001-of-00002.safetensors')).toEqual([]);
  });

  it('gated with a token that has not accepted the licence', async () => {
    const e = await rejection(loadModel(deps(), fromHub('webtune/tiny-gated-llama', 'hf_mock_noaccess')));
    expect((e as HubError).kind).toBe('gated-no-access');
    expect(e.message).toMatch(/Your token cannot read webtune\/tiny-gated-llama yet: open .*, accept the licence/);
  });

  it('a repo that does not exist, and a private one without a token', async () => {
    for (const id of ['webtune/no-such-model', 'webtune/tiny-private-llama']) {
      const e = await rejection(loadModel(deps(), fromHub(id)));
      expect((e as HubError).kind).toBe('repo-not-found');
      expect(e.message).toMatch(new RegExp(`Model ${id} was not found on 127\\.0\\.0\\.1:\\d+: check the name`));
    }
    expect((await rejection(loadModel(deps(), fromHub('not a repo id')))).message).toMatch(/write it as owner\/name/);
  });

  it('an unsupported architecture', async () => {
    const e = await rejection(loadModel(deps(), fromHub('webtune/tiny-gemma')));
    expect(e.name).toBe('UnsupportedModelError');
    expect(e.message).toMatch(/gemma2.*not supported.*llama/i);
    expect(byteRequests(hub.requests, 'model.safetensors')).toEqual([]);
    expect(hub.requests.some((r) => r.url.includes('config.json'))).toBe(true);
  });

  it('rate limited: says to wait', async () => {
    hub.faults.rateLimit({ retryAfterSeconds: 7, pathPrefix: '/api/' });
    const e = await rejection(loadModel(deps(), fromHub('webtune/tiny-random-llama')));
    expect((e as HubError).kind).toBe('rate-limited');
    expect(e.message).toMatch(/wait 7 s/);
  });

  it('offline with nothing cached', async () => {
    const e = await rejection(loadModel(deps(), { kind: 'hub', id: 'webtune/tiny-random-llama', endpoint: 'http://127.0.0.1:9' }));
    expect((e as HubError).kind).toBe('offline');
    expect(e.message).toMatch(/Cannot reach 127\.0\.0\.1:9/);
  });
});
