// Load time of a model from the cache to the GPU: a random bf16 checkpoint of a real model's shape
// is generated straight into a filesystem-backed ModelCache (fs-cache.ts; the path a Hub download
// takes, so no download is timed), then loadModel runs against it as the app does on a reload:
// one model-info request (answered in-process) and every file a cache hit. Timed: loadModel until
// its last GPU work is done. Also timed, to show where the time goes: reading the checkpoint
// through the cache alone (the loader's CPU side: it uploads the raw bf16 of every chunk, widens
// it to f32 and quantizes on the GPU), and, for comparison, converting bf16 to f32 on the CPU
// alone (what the loader did per chunk before the widening moved to the GPU).
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { allTensorSpecs, parseModelConfig } from '../../src/engine/arch.ts';
import type { Gpu } from '../../src/engine/gpu.ts';
import type { Kernels } from '../../src/engine/kernels.ts';
import { loadModel, unloadModel, type LoadDeps, type ModelSourceSpec, type ModelSummary } from '../../src/engine/loader.ts';
import { ModelCache, type RemoteBytes } from '../../src/io/cache.ts';
import {
  formatShardIndex,
  planShards,
  safetensorsFileSize,
  safetensorsStream,
  SAFETENSORS_INDEX_FILE,
  toF32,
  type TensorToWrite,
} from '../../src/io/safetensors.ts';
import { FsCacheStore } from './fs-cache.ts';
import { median } from './timing.ts';

const LLAMA3_ROPE = { factor: 32.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192, rope_type: 'llama3' };

/** config.json of meta-llama/Llama-3.2-1B and Llama-3.1-8B (tests/fixtures/configs), as shipped. */
export const LOAD_CONFIGS: Record<string, Record<string, unknown>> = {
  '1b': {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', torch_dtype: 'bfloat16', hidden_act: 'silu',
    hidden_size: 2048, intermediate_size: 8192, num_hidden_layers: 16, num_attention_heads: 32, num_key_value_heads: 8, head_dim: 64,
    vocab_size: 128256, max_position_embeddings: 131072, rms_norm_eps: 1e-5, rope_theta: 500000.0, rope_scaling: LLAMA3_ROPE,
    tie_word_embeddings: true, attention_bias: false, mlp_bias: false, bos_token_id: 128000, eos_token_id: 128001,
  },
  '8b': {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', torch_dtype: 'bfloat16', hidden_act: 'silu',
    hidden_size: 4096, intermediate_size: 14336, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8,
    vocab_size: 128256, max_position_embeddings: 131072, rms_norm_eps: 1e-5, rope_theta: 500000.0, rope_scaling: { ...LLAMA3_ROPE, factor: 8.0 },
    tie_word_embeddings: false, attention_bias: false, mlp_bias: false, bos_token_id: 128000, eos_token_id: 128001,
  },
};
const NAMES: Record<string, string> = { '1b': 'Llama-3.2-1B', '8b': 'Llama-3.1-8B' };

export interface LoadBenchOptions {
  /** '1b' (default) or '8b'. */
  shape: string;
  /** Fewer decoder layers than the real model (a truncated variant), and/or a smaller vocab. */
  layers?: number;
  vocab?: number;
  /** Where the cache folder goes (a fresh temp folder inside it, removed afterwards unless keep). */
  dir: string;
  keep: boolean;
  /** Loads timed (the first also compiles the pipelines). */
  repeats: number;
  /** Largest shard (tensor bytes; default transformers' 5 GB). */
  shardBytes?: number;
}

export interface LoadResult {
  op: 'load';
  model: string;
  /** True when layers or vocab differ from the real model. */
  truncated: boolean;
  layers: number;
  hidden: number;
  intermediate: number;
  vocab: number;
  params: number;
  files: string[];
  /** Bytes of the safetensors files (bf16 weights + headers). */
  checkpointBytes: number;
  /** Seconds to generate the random checkpoint into the cache (not part of the figure). */
  prepareSeconds: number;
  /** Median load time, cache to GPU, of the loads after the first (of the only one if repeats is 1). */
  seconds: number;
  gbps: number;
  /** The first load, which also compiles the NF4 pipelines. */
  firstSeconds: number;
  allSeconds: number[];
  /** Reading the checkpoint through the cache alone, and bf16 -> f32 on the CPU alone (for comparison: the loader widens on the GPU). */
  cacheReadGbps: number;
  bf16ToF32Gbps: number;
  nf4Bytes: number;
  denseBytes: number;
  gpuBytes: number;
  gpuLoadPeak: number;
  cacheDir: string | null;
}

/** Random bf16 of magnitude 2^-10 .. 0.25 and random sign: finite, NF4 blocks with real spread. */
function randomBf16(n: number, state: { s: number }): Uint8Array {
  const out = new Uint16Array(n);
  let s = state.s;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = (s & 0x807f) | ((117 + ((s >>> 7) & 7)) << 7);
  }
  state.s = s;
  return new Uint8Array(out.buffer);
}

function streamOf(bytes: Uint8Array): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(c) {
      c.enqueue(bytes);
      c.close();
    },
  });
}

/** Puts a file into the cache through ModelCache.fetch, as a download would. */
async function putFile(cache: ModelCache, repo: string, revision: string, path: string, size: number, stream: () => ReadableStream<Uint8Array>): Promise<void> {
  const remote: RemoteBytes = { size, etag: null, stream: () => stream() };
  const f = await cache.fetch({ repo, revision, path }, remote);
  await f.done;
  await f.close();
}

const CHUNK = 32 * 1024 * 1024; // bytes of bf16 per read: 64 MiB of f32, the loader's chunk

export async function benchLoad(gpu: Gpu, kernels: Kernels, opts: LoadBenchOptions): Promise<LoadResult> {
  const base = LOAD_CONFIGS[opts.shape];
  if (!base) throw new Error(`--load-shape ${opts.shape}: one of ${Object.keys(LOAD_CONFIGS).join(', ')}`);
  const config = { ...base };
  if (opts.layers !== undefined) config.num_hidden_layers = opts.layers;
  if (opts.vocab !== undefined) config.vocab_size = opts.vocab;
  const truncated = config.num_hidden_layers !== base.num_hidden_layers || config.vocab_size !== base.vocab_size;
  const arch = parseModelConfig(config);
  const id = `bench/${NAMES[opts.shape]}${truncated ? '-truncated' : ''}`;
  const sha = '5eed'.repeat(10);
  const dir = mkdtempSync(join(opts.dir, 'webtune-bench-load-'));
  const cache = new ModelCache(new FsCacheStore(dir));
  try {
    // ---- the checkpoint, straight into the cache
    const t0 = performance.now();
    const rand = { s: 0x9e3779b9 };
    const tensors: TensorToWrite[] = allTensorSpecs(arch).map((t) => ({
      name: t.name,
      dtype: 'BF16',
      shape: t.shape,
      data: () => randomBf16(t.shape.reduce((a, b) => a * b, 1), rand),
    }));
    const plan = planShards(tensors, opts.shardBytes); // transformers' 5 GB shards: one file for 1B, four for 8B
    const files = new Map<string, number>();
    const put = async (path: string, size: number, stream: () => ReadableStream<Uint8Array>) => {
      await putFile(cache, id, sha, path, size, stream);
      files.set(path, size);
    };
    const text = (s: string) => new TextEncoder().encode(s);
    const configBytes = text(JSON.stringify(config, null, 2));
    await put('config.json', configBytes.length, () => streamOf(configBytes));
    if (plan.index) {
      const indexBytes = text(formatShardIndex(plan.index));
      await put(SAFETENSORS_INDEX_FILE, indexBytes.length, () => streamOf(indexBytes));
    }
    const weightFiles: string[] = [];
    for (const shard of plan.shards) {
      await put(shard.fileName, safetensorsFileSize(shard.tensors), () => safetensorsStream(shard.tensors));
      weightFiles.push(shard.fileName);
    }
    const checkpointBytes = weightFiles.reduce((s, f) => s + files.get(f)!, 0);
    const prepareSeconds = (performance.now() - t0) / 1e3;

    // ---- loads: model info answered in-process, everything else must come from the cache
    const info = {
      _id: id,
      id,
      sha,
      private: false,
      gated: false,
      tags: [],
      siblings: [...files].map(([rfilename, size]) => ({ rfilename, size })),
    };
    const fetch = async (url: string): Promise<Response> => {
      if (url.includes('/api/models/')) return new Response(JSON.stringify(info), { headers: { 'content-type': 'application/json' } });
      throw new Error(`load bench: unexpected request ${url} (the cache should have every file)`);
    };
    const deps: LoadDeps = { gpu, kernels, cache, hub: { fetch } };
    const source: ModelSourceSpec = { kind: 'hub', id, endpoint: 'http://hub.bench.invalid' };
    const allSeconds: number[] = [];
    let summary: ModelSummary | null = null;
    for (let r = 0; r < Math.max(1, opts.repeats); r++) {
      const t = performance.now();
      const model = await loadModel(deps, source);
      await gpu.device.queue.onSubmittedWorkDone();
      allSeconds.push((performance.now() - t) / 1e3);
      summary ??= model.summary;
      unloadModel(model);
    }
    const s = summary!;
    if (s.downloadedBytes !== 0) throw new Error(`load bench: ${s.downloadedBytes} bytes were downloaded; the cache was not warm`);
    const seconds = allSeconds.length > 1 ? median(allSeconds.slice(1)) : allSeconds[0];

    // ---- where the time goes: the cache alone, the bf16 -> f32 conversion alone
    let readSeconds = 0;
    let convertSeconds = 0;
    for (const path of weightFiles) {
      const size = files.get(path)!;
      const f = await cache.fetch({ repo: id, revision: sha, path }, { size, etag: null, stream: () => streamOf(new Uint8Array()) });
      for (let off = 0; off < size; off += CHUNK) {
        const n = Math.min(CHUNK, size - off) & ~1;
        let t = performance.now();
        const bytes = await f.source.read(off, n);
        readSeconds += (performance.now() - t) / 1e3;
        t = performance.now();
        toF32({ name: path, dtype: 'BF16', file: path }, bytes);
        convertSeconds += (performance.now() - t) / 1e3;
      }
      await f.close();
    }

    return {
      op: 'load',
      model: NAMES[opts.shape],
      truncated,
      layers: arch.layers,
      hidden: arch.hidden,
      intermediate: arch.intermediate,
      vocab: arch.vocabSize,
      params: arch.params.total,
      files: weightFiles,
      checkpointBytes,
      prepareSeconds,
      seconds,
      gbps: checkpointBytes / seconds / 1e9,
      firstSeconds: allSeconds[0],
      allSeconds,
      cacheReadGbps: checkpointBytes / readSeconds / 1e9,
      bf16ToF32Gbps: checkpointBytes / convertSeconds / 1e9,
      nf4Bytes: s.nf4Bytes,
      denseBytes: s.denseBytes,
      gpuBytes: s.gpuBytes,
      gpuLoadPeak: s.gpuMemory.loadPeak,
      cacheDir: opts.keep ? dir : null,
    };
  } finally {
    if (!opts.keep) rmSync(dir, { recursive: true, force: true });
  }
}

export function describeLoad(r: LoadResult): string {
  const shape = `${r.layers} layers${r.truncated ? `, vocab ${r.vocab}: TRUNCATED` : ''}`;
  return (
    `load ${r.model} shape (${shape}; ${(r.params / 1e9).toFixed(2)} B params, ${(r.checkpointBytes / 1e9).toFixed(2)} GB bf16 in ${r.files.length} file(s)) ` +
    `from cache to GPU: ${r.seconds.toFixed(2)} s, ${r.gbps.toFixed(2)} GB/s (first load ${r.firstSeconds.toFixed(2)} s); ` +
    `cache read alone ${r.cacheReadGbps.toFixed(2)} GB/s, bf16->f32 on the CPU alone ${r.bf16ToF32Gbps.toFixed(2)} GB/s (not on the load path: widened on the GPU); ` +
    `GPU ${(r.gpuBytes / 2 ** 30).toFixed(2)} GiB (peak ${(r.gpuLoadPeak / 2 ** 30).toFixed(2)} GiB while loading)`
  );
}
