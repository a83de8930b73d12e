// The export of a loaded model, as the trainer worker and the headless runner run it
// (src/engine/export-run.ts): models loaded onto the GPU (Dawn) through the mock Hub, a LoRA set on
// the GPU, base weights re-read from the checkpoint through the cache (16-bit, or a bnb-4bit
// checkpoint's NF4 dequantized), files written to a folder with a worker_threads pool, and read back.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { unzipSync } from 'fflate';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../src/engine/gpu.ts';
import { Kernels } from '../src/engine/kernels.ts';
import { loadModel, unloadModel, type LoadedModel, type ModelSourceSpec } from '../src/engine/loader.ts';
import { destroyLora, loraFromAdapter } from '../src/engine/lora-weights.ts';
import { exportLoaded } from '../src/engine/export-run.ts';
import { openCheckpointWeights, type ExportableModel } from '../src/engine/export-source.ts';
import { parseModelConfig } from '../src/engine/arch.ts';
import { MemoryCacheStore, ModelCache } from '../src/io/cache.ts';
import { f32ArrayToF16, f16ArrayToF32 } from '../src/io/dtype.ts';
import { ExportError } from '../src/io/export-job-errors.ts';
import { openGguf } from '../src/io/gguf-read.ts';
import { mergeLora } from '../src/io/merge.ts';
import { openModelFiles, type ModelFiles } from '../src/io/model-source.ts';
import { dequantizeNf4, type Nf4Weight } from '../src/io/nf4.ts';
import { loraScaling, readPeftAdapter } from '../src/io/peft.ts';
import { createNodeQuantPool } from '../src/io/quant-pool-node.ts';
import type { QuantPool } from '../src/io/quant-pool.ts';
import { bytesSource, openSafetensors } from '../src/io/safetensors.ts';
import { MemorySink } from '../src/io/sink.ts';
import { NodeDirectorySink } from '../src/io/sink-node.ts';
import { startMockHub, type MockHub } from '../tools/mock-hub/server.ts';
import { testGpu } from './gpu/device.ts';
import { firstDiff } from './fixtures/gguf/helpers.ts';
import { DEMO_DIR, openCheckpoint, writeBnbRepo } from './model-load-helpers.ts';
import { randomAdapter } from './export-helpers.ts';

let gpu: Gpu;
let kernels: Kernels;
let hub: MockHub;
let pool: QuantPool;
const tmp = mkdtempSync(join(tmpdir(), 'webtune-export-src-'));
const BNB_DIR = join(tmp, 'bnb');
let bnbWeights: Map<string, Nf4Weight>;

beforeAll(async () => {
  gpu = await testGpu();
  kernels = new Kernels(gpu);
  bnbWeights = await writeBnbRepo(BNB_DIR);
  hub = await startMockHub({ mounts: { models: { 'webtune/demo-tiny-llama': DEMO_DIR, 'webtune/tiny-bnb-llama': BNB_DIR } } });
  pool = createNodeQuantPool({ size: 2, minPieceElements: 1024 });
});
afterAll(async () => {
  pool?.close();
  await hub?.close();
  rmSync(tmp, { recursive: true, force: true });
});
afterEach(() => {
  hub.requests.length = 0;
});

const cache = new ModelCache(new MemoryCacheStore());
const fromHub = (id: string): ModelSourceSpec => ({ kind: 'hub', id, endpoint: hub.url });
const load = (id: string): Promise<LoadedModel> => loadModel({ gpu, kernels, cache, hub: { retryDelayMs: 1 } }, fromHub(id));
/** The files again, pinned to the loaded commit, through the same cache (what the worker does);
 * `opened` lists the files fetched through it (the cache may hold them: the Hub sees nothing). */
async function filesOf(m: LoadedModel): Promise<ModelFiles & { opened: string[] }> {
  const files = await openModelFiles({ kind: 'hub', id: m.summary.id, endpoint: hub.url, revision: m.summary.revision! }, { cache });
  const opened: string[] = [];
  return { ...files, has: files.has, bytes: files.bytes, opened, fetch: (path, opts) => (opened.push(path), files.fetch(path, opts)) };
}

describe('base weights from the checkpoint', () => {
  it('a bnb-4bit checkpoint: linears are its NF4 dequantized (rounded to bf16), the rest as stored; rows read the same', async () => {
    const files = await openModelFiles(fromHub('webtune/tiny-bnb-llama'), { cache });
    const w = await openCheckpointWeights(files);
    try {
      expect(w.origin).toBe('nf4');
      const st = await openCheckpoint(BNB_DIR, ['model.safetensors']);
      for (const [name, q] of bnbWeights) {
        const got = await w.read(name);
        expect(firstDiff(got, dequantizeNf4(q, { toSourceDtype: true })), name).toBe(-1);
        const cols = q.shape[1];
        expect(firstDiff(await w.readRows!(name, 3, 5), got.subarray(3 * cols, 8 * cols)), name).toBe(-1);
      }
      const norm = 'model.layers.0.input_layernorm.weight';
      expect(firstDiff(await w.read(norm), await st.get(norm)!.readF32(norm))).toBe(-1);
    } finally {
      await w.close();
    }
  });

  it('a 16-bit checkpoint reads as stored', async () => {
    const w = await openCheckpointWeights(await openModelFiles(fromHub('webtune/demo-tiny-llama'), { cache }));
    expect(w.origin).toBe('16-bit');
    const st = await openCheckpoint(DEMO_DIR, ['model.safetensors']);
    const name = 'model.embed_tokens.weight';
    const all = await st.get(name)!.readF32(name);
    expect(firstDiff(await w.read(name), all)).toBe(-1);
    expect(firstDiff(await w.readRows!(name, 100, 7), all.subarray(100 * 64, 107 * 64))).toBe(-1);
    await w.close();
  });
});

describe('exportLoaded without a GPU: a saved adapter and the model files (the headless runner)', () => {
  it('GGUF Q4_K_M of the demo with an adapter read from disk equals the one made from the same adapter on the GPU', async () => {
    const files = await openModelFiles(fromHub('webtune/demo-tiny-llama'), { cache });
    const text = async (f: string) => new TextDecoder().decode(await files.bytes(f));
    const model: ExportableModel = {
      arch: parseModelConfig(JSON.parse(await text('config.json'))),
      tokenizerFiles: new Map(await Promise.all(['tokenizer.json', 'tokenizer_config.json', 'generation_config.json'].map(async (f) => [f, await text(f)] as [string, string]))),
      summary: { id: 'webtune/demo-tiny-llama', revision: files.revision, quantization: 'nf4' },
    };
    const adapter = randomAdapter(model.arch, 9, { r: 4 });
    const fromDisk = new MemorySink();
    await exportLoaded({ loaded: model, files, lora: { adapter }, pool, sink: () => fromDisk }, { kind: 'gguf', ggufType: 'q4_k_m', template: 'chatml' });
    const m = await load('webtune/demo-tiny-llama');
    const set = loraFromAdapter(gpu.device, m.arch, adapter);
    try {
      const fromGpu = new MemorySink();
      await exportLoaded({ loaded: m, files: await filesOf(m), lora: { set, device: gpu.device }, sink: () => fromGpu }, { kind: 'gguf', ggufType: 'q4_k_m', template: 'chatml' });
      const name = 'demo-tiny-llama-Q4_K_M.gguf';
      expect(fromDisk.files.get(name)!.length).toBeGreaterThan(100_000);
      expect(firstDiff(fromDisk.files.get(name)!, fromGpu.files.get(name)!)).toBe(-1);
    } finally {
      destroyLora(set);
      unloadModel(m);
    }
  });
});

describe('exportLoaded: the demo model on the GPU with a LoRA set', () => {
  it('adapter zip (read back from the GPU exactly), GGUF q8_0 + Modelfile through the pool, merged f16 from the checkpoint', async () => {
    const m = await load('webtune/demo-tiny-llama');
    const adapter = randomAdapter(m.arch, 41, { r: 4, loraAlpha: 8, targetModules: ['q_proj', 'v_proj', 'down_proj'] });
    const set = loraFromAdapter(gpu.device, m.arch, adapter);
    try {
      const files = await filesOf(m);
      const zipSink = new MemorySink();
      const zip = await exportLoaded({ loaded: m, files, lora: { set, device: gpu.device }, sink: () => zipSink }, { kind: 'adapter', template: 'chatml', loraDropout: 0.05 });
      expect(files.opened).toEqual([]); // the adapter alone never reads the base
      const unzipped = unzipSync(zipSink.files.get(zip.name)!);
      const back = await readPeftAdapter({ config: new TextDecoder().decode(unzipped['adapter_config.json']), weights: unzipped['adapter_model.safetensors'] }, m.arch);
      expect(back.adapter.settings).toMatchObject({ r: 4, loraAlpha: 8, useRslora: true, loraDropout: 0.05, baseModelNameOrPath: 'webtune/demo-tiny-llama', revision: m.summary.revision });
      for (const [path, mod] of adapter.modules) {
        expect(firstDiff(back.adapter.modules.get(path)!.a, mod.a), path).toBe(-1);
        expect(firstDiff(back.adapter.modules.get(path)!.b, mod.b), path).toBe(-1);
      }

      const ggufDir = join(tmp, 'gguf');
      const g = await exportLoaded(
        { loaded: m, files, lora: { set, device: gpu.device }, pool, sink: () => new NodeDirectorySink(ggufDir) },
        { kind: 'gguf', ggufType: 'q8_0', template: 'chatml' },
      );
      expect(files.opened).toEqual(['model.safetensors']);
      expect(readdirSync(ggufDir).sort()).toEqual(['Modelfile', 'demo-tiny-llama-Q8_0.gguf']);
      expect(g.notes[0]).toBe('Merged into the original base weights, as stored in the checkpoint.');
      const file = await openGguf(new Uint8Array(readFileSync(join(ggufDir, 'demo-tiny-llama-Q8_0.gguf'))));
      expect(file.get('general.name')).toBe('webtune/demo-tiny-llama (LoRA merged)');
      expect(String(file.get('tokenizer.chat_template'))).toContain('<|im_start|>');

      const mergedSink = new MemorySink();
      await exportLoaded({ loaded: m, files, lora: { set, device: gpu.device }, pool, sink: () => mergedSink }, { kind: 'merged', dtype: 'float16' });
      const st = await openSafetensors(bytesSource(mergedSink.files.get('model.safetensors')!));
      const ckpt = await openCheckpoint(DEMO_DIR, ['model.safetensors']);
      const name = 'model.layers.1.mlp.down_proj';
      const mod = adapter.modules.get(name)!;
      const base = await ckpt.get(`${name}.weight`)!.readF32(`${name}.weight`);
      const want = f16ArrayToF32(f32ArrayToF16(mergeLora(base, mod.a, mod.b, 64, 172, 4, loraScaling(adapter.settings))));
      expect(firstDiff(await st.readF32(`${name}.weight`), want)).toBe(-1);
    } finally {
      destroyLora(set);
      unloadModel(m);
    }
  });

  it('no adapter: refused before the base weights or the sink are touched', async () => {
    const m = await load('webtune/demo-tiny-llama');
    try {
      const files = await filesOf(m);
      let sinks = 0;
      for (const kind of ['adapter', 'merged', 'gguf'] as const) {
        const e = await exportLoaded({ loaded: m, files, lora: null, sink: () => (sinks++, new MemorySink()) }, { kind }).then(
          () => null,
          (x: unknown) => x,
        );
        expect(e).toBeInstanceOf(ExportError);
        expect((e as ExportError).reason).toBe('no-adapter');
      }
      expect(sinks).toBe(0);
      expect(files.opened).toEqual([]);
    } finally {
      unloadModel(m);
    }
  });

  it('a bnb-4bit model: the merged export says it merged into dequantized NF4', async () => {
    const m = await load('webtune/tiny-bnb-llama');
    const set = loraFromAdapter(gpu.device, m.arch, randomAdapter(m.arch, 5, { r: 2 }));
    try {
      const sink = new MemorySink();
      // The tiny model has no tokenizer.json: a merged model needs one, the adapter does not.
      const e = await exportLoaded({ loaded: m, files: await filesOf(m), lora: { set, device: gpu.device }, sink: () => sink }, { kind: 'merged' }).catch((x: unknown) => x);
      expect((e as ExportError).message).toBe('webtune/tiny-bnb-llama has no tokenizer.json, and a merged model needs one. Export the adapter instead.');
      const r = await exportLoaded({ loaded: m, files: await filesOf(m), lora: { set, device: gpu.device }, sink: () => sink }, { kind: 'adapter', adapterLayout: 'folder' });
      const readme = new TextDecoder().decode(sink.files.get('README.md')!);
      expect(readme).toContain('base_model: webtune/tiny-bnb-llama');
      expect(r.files.map((f) => f.name)).toEqual(['adapter_config.json', 'adapter_model.safetensors', 'README.md']);
    } finally {
      destroyLora(set);
      unloadModel(m);
    }
  });
});
