// Export throughput (`npm run bench -- --only export`): the export job (src/io/export-job.ts) as the
// trainer worker and the headless runner run it, with a worker_threads quantization pool.
//   demo      the demo model (public/demo/model) with a random r=16 adapter on every linear:
//             adapter zip, merged bf16, GGUF Q4_K_M and Q8_0, written to a temp folder
//   1b, 8b    Llama 3.2 1B / Llama 3.1 8B shapes (load.ts's configs) with random weights and a random
//             r=16 adapter: merged bf16 and GGUF Q4_K_M, written to a sink that counts and drops the
//             bytes (the figure is the export's own work, not the disk). --export-layers N keeps N
//             decoder layers (and the whole vocabulary) for a shorter run. With these shapes the
//             bench first times the Q4_K_M mix's quantizers (Q4_K, Q6_K) and the LoRA merge on
//             one thread (2^22 N(0, 0.02²) values), so that a run can be read per core, and the
//             same quantizers on the GPU.
// GGUF k-quants (Q4_K, Q5_K, Q6_K, Q8_0) run on the GPU (src/engine/kquant-gpu.ts), the rest and the
// merge in the pool; `--export-quantizer pool` keeps them all in the pool. Each result says which.
// Figures: seconds, bytes, MB/s written, base weights per second.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { allTensorSpecs, parseModelConfig, type ModelArch } from '../../src/engine/arch.ts';
import type { Kernels } from '../../src/engine/kernels.ts';
import { gpuQuantizer, KQuantGpu, type GpuQuantizer } from '../../src/engine/kquant-gpu.ts';
import { planExport, runExport, type ExportModel, type ExportRequest } from '../../src/io/export-job.ts';
import type { WeightSource } from '../../src/io/export-arch.ts';
import { loraTargets, type LoraAdapter, type LoraSettings } from '../../src/io/peft.ts';
import { createNodeQuantPool, defaultPoolSize } from '../../src/io/quant-pool-node.ts';
import { mergeLora } from '../../src/io/merge.ts';
import { GGMLType, quantFormat, quantize } from '../../src/io/quants/index.ts';
import { bytesSource, openSafetensors } from '../../src/io/safetensors.ts';
import { NodeDirectorySink } from '../../src/io/sink-node.ts';
import type { ExportSink, SinkFile } from '../../src/io/sink.ts';
import { rng } from '../../src/util/random.ts';
import { LOAD_CONFIGS } from './load.ts';
import { median } from './timing.ts';

export interface ExportBenchOptions {
  /** 'demo', '1b', '8b'. */
  shapes: string[];
  /** Decoder layers of the 1b/8b shapes (default: all). */
  layers?: number;
  /** Vocabulary of the 1b/8b shapes (default: the real 128256); smaller only to try the bench out. */
  vocab?: number;
  /** Runs of each demo export; the median is reported (default 3). */
  repeats?: number;
  /** Pool workers (default: the cores less one). */
  workers?: number;
  /** Where GGUF k-quants run (default gpu when the bench has a GPU). */
  quantizer?: 'gpu' | 'pool';
}

export interface ExportResult {
  op: 'export';
  model: string;
  kind: string;
  layers: number;
  /** Parameters of the model exported (base weights read). */
  params: number;
  workers: number;
  /** Where the quantization ran: 'gpu' (GGUF k-quants; other types in the pool) or 'pool' (and
   * every non-GGUF export, whose conversion and merge always run in the pool). */
  quantizer: 'gpu' | 'pool';
  /** GPU runs: blocks the GPU left to the CPU (non-finite, tiny or huge values). */
  cpuBlocks?: number;
  /** The GPU quantizer's rate runs: blocks byte-identical to the CPU quantizer's, of `blocks`. */
  identicalBlocks?: number;
  blocks?: number;
  seconds: number;
  bytes: number;
  mbps: number;
  weightsPerSecond: number;
  /** What the whole real model would take at this rate (truncated shapes). */
  fullModelSeconds: number | null;
}

const R = 16;
const TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

/** N(0, scale²) values from a seed (Box-Muller). */
function gaussian(n: number, seed: number, scale: number): Float32Array {
  const next = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next()) * scale;
  return out;
}

function randomAdapter(arch: ModelArch): LoraAdapter {
  const settings: LoraSettings = { r: R, loraAlpha: R, useRslora: true, targetModules: TARGETS };
  const modules = new Map();
  loraTargets(arch, settings).forEach((t, i) => modules.set(t.path, { a: gaussian(R * t.linear.in, 2 * i, 0.02), b: gaussian(t.linear.out * R, 2 * i + 1, 0.02) }));
  return { settings, modules };
}

/** Random weights for any tensor, made fast: windows of one Gaussian pool at a per-tensor offset. */
function randomWeights(arch: ModelArch): WeightSource {
  const pool = gaussian(1 << 22, 7, 0.02);
  const shapes = new Map(allTensorSpecs(arch).map((t, i) => [t.name, { shape: t.shape, norm: t.kind === 'norm', seed: i * 7919 }]));
  const rows = (name: string, start: number, count: number): Float32Array => {
    const t = shapes.get(name);
    if (!t) throw new Error(`no tensor ${name}`);
    const cols = t.shape.length === 2 ? t.shape[1] : t.shape[0];
    const out = new Float32Array(count * cols);
    if (t.norm) return out.fill(1);
    let src = (t.seed + start * cols) % pool.length;
    for (let o = 0; o < out.length; ) {
      const n = Math.min(out.length - o, pool.length - src);
      out.set(pool.subarray(src, src + n), o);
      o += n;
      src = 0;
    }
    return out;
  };
  return {
    read: async (name) => {
      const t = shapes.get(name)!;
      return rows(name, 0, t.shape.length === 2 ? t.shape[0] : 1);
    },
    readRows: async (name, start, count) => rows(name, start, count),
  };
}

/** A byte-level BPE tokenizer.json with `vocab` tokens (the real vocabulary's size, not its text). */
function syntheticTokenizer(vocab: number): Record<string, unknown> {
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  const v: Record<string, number> = {};
  let extra = 0;
  for (let b = 0; b < 256; b++) v[printable(b) ? String.fromCharCode(b) : String.fromCharCode(256 + extra++)] = b;
  for (let i = 256; i < vocab; i++) v[`tok${i}`] = i;
  return {
    version: '1.0',
    added_tokens: [],
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    decoder: { type: 'ByteLevel' },
    model: { type: 'BPE', vocab: v, merges: ['Ġ Ġ'] },
  };
}

function shapeModel(shape: string, layers?: number, vocab?: number): { model: ExportModel; truncated: boolean; fullParams: number } {
  const base = LOAD_CONFIGS[shape];
  if (!base) throw new Error(`--export-shapes: ${shape} is not one of demo, ${Object.keys(LOAD_CONFIGS).join(', ')}`);
  const full = parseModelConfig(base);
  const config = { ...base, ...(layers ? { num_hidden_layers: layers } : {}), ...(vocab ? { vocab_size: vocab } : {}) };
  const arch = parseModelConfig(config);
  return {
    model: {
      id: `bench/${shape}`,
      arch,
      config,
      tokenizerJson: syntheticTokenizer(arch.vocabSize),
      tokenizerConfig: {},
      tensors: allTensorSpecs(arch).map((t) => ({ name: t.name, shape: t.shape })),
      base: randomWeights(arch),
      baseOrigin: '16-bit',
      template: null,
    },
    truncated: arch.layers !== full.layers || arch.vocabSize !== full.vocabSize,
    fullParams: full.params.total,
  };
}

async function demoModel(): Promise<ExportModel> {
  const dir = 'public/demo/model';
  const json = (f: string) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as Record<string, unknown>;
  const config = json('config.json');
  const arch = parseModelConfig(config);
  const st = await openSafetensors(bytesSource(new Uint8Array(readFileSync(join(dir, 'model.safetensors')))));
  return {
    id: 'webtune/demo-tiny-llama',
    arch,
    config,
    generationConfig: json('generation_config.json'),
    tokenizerJson: json('tokenizer.json'),
    tokenizerConfig: json('tokenizer_config.json'),
    tensors: allTensorSpecs(arch).map((t) => ({ name: t.name, shape: t.shape })),
    base: { read: (n) => st.readF32(n) },
    baseOrigin: '16-bit',
    template: null,
  };
}

/** One-thread speed of the quantizers of the Q4_K_M mix and of the LoRA merge (r = 16), each the
 * best of a few runs over 2^22 values after a warm-up; with a GPU, its speed on the same values. */
async function threadRates(kernels?: Kernels): Promise<ExportResult[]> {
  const n = 1 << 22;
  const x = gaussian(n, 11, 0.02);
  const best = (run: () => number): { seconds: number; bytes: number } => {
    let seconds = Infinity;
    let bytes = 0;
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      bytes = run();
      seconds = Math.min(seconds, (performance.now() - t0) / 1000);
    }
    return { seconds, bytes };
  };
  const result = (kind: string, r: { seconds: number; bytes: number }, gpu = false): ExportResult => ({
    op: 'export',
    model: gpu ? 'gpu' : 'one thread',
    kind,
    layers: 0,
    params: n,
    workers: gpu ? 0 : 1,
    quantizer: gpu ? 'gpu' : 'pool',
    seconds: r.seconds,
    bytes: r.bytes,
    mbps: r.bytes / r.seconds / 1e6,
    weightsPerSecond: n / r.seconds,
    fullModelSeconds: null,
  });
  const out: ExportResult[] = [];
  for (const [name, type] of [['Q4_K', GGMLType.Q4_K], ['Q6_K', GGMLType.Q6_K]] as const) {
    quantize(type, x.subarray(0, 1 << 16)); // warm-up
    out.push(result(`quantize ${name}`, best(() => quantize(type, x).length)));
  }
  const cols = 4096;
  const a = gaussian(R * cols, 12, 0.02);
  const b = gaussian((n / cols) * R, 13, 0.02);
  mergeLora(x.subarray(0, 16 * cols), a, b.subarray(0, 16 * R), 16, cols, R, 1);
  out.push(result(`merge r=${R}`, best(() => mergeLora(x, a, b, n / cols, cols, R, 1).length * 4)));
  if (kernels) {
    const gpu = new KQuantGpu(kernels);
    try {
      for (const [name, type] of [['Q4_K', GGMLType.Q4_K], ['Q5_K', GGMLType.Q5_K], ['Q6_K', GGMLType.Q6_K], ['Q8_0', GGMLType.Q8_0]] as const) {
        await gpu.quantize(type, x.subarray(0, 1 << 16)); // compiles the shaders
        let seconds = Infinity;
        let got: Uint8Array = new Uint8Array();
        for (let i = 0; i < 3; i++) {
          const t0 = performance.now();
          got = await gpu.quantize(type, x);
          seconds = Math.min(seconds, (performance.now() - t0) / 1000);
        }
        out.push({ ...result(`quantize ${name}`, { seconds, bytes: got.length }, true), ...agreement(type, got, quantize(type, x)) });
      }
    } finally {
      gpu.destroy();
    }
  }
  return out;
}

/** How many blocks of the GPU's bytes equal the CPU quantizer's (ggml's) bytes. */
function agreement(type: number, gpu: Uint8Array, cpu: Uint8Array): { identicalBlocks: number; blocks: number } {
  const size = quantFormat(type).typeSize;
  const blocks = cpu.length / size;
  let identicalBlocks = 0;
  for (let b = 0; b < blocks; b++) {
    let same = true;
    for (let i = b * size; i < (b + 1) * size && same; i++) same = gpu[i] === cpu[i];
    if (same) identicalBlocks++;
  }
  return { identicalBlocks, blocks };
}

/** Counts the bytes and drops them. */
class CountingSink implements ExportSink {
  readonly where = 'nowhere (counted)';
  bytes = 0;
  async create(): Promise<SinkFile> {
    return { write: async (c) => void (this.bytes += c.length), close: async () => undefined };
  }
  async commit(): Promise<void> {}
  async discard(): Promise<string[]> {
    return [];
  }
}

// The bundle (dist-bench) carries the pool worker as quant-worker.js next to bench.js; from sources
// (tsx) the pool starts its TypeScript worker itself.
const BUNDLED_WORKER = 'quant-worker.js';

export async function benchExport(opts: ExportBenchOptions, kernels?: Kernels): Promise<ExportResult[]> {
  const workers = opts.workers ?? defaultPoolSize();
  const bundled = !import.meta.url.endsWith('.ts');
  const pool = createNodeQuantPool({ size: workers, workerUrl: bundled ? new URL(BUNDLED_WORKER, import.meta.url) : undefined });
  const quantizer: GpuQuantizer | undefined =
    kernels && (opts.quantizer ?? 'gpu') === 'gpu' ? gpuQuantizer(kernels, { fallback: (t, w) => pool.quantize(t, w) }) : undefined;
  const results: ExportResult[] = [];
  const tmp = mkdtempSync(join(tmpdir(), 'webtune-export-bench-'));
  try {
    if (opts.shapes.some((s) => s !== 'demo')) {
      for (const r of await threadRates(kernels)) {
        results.push(r);
        console.log(describeExport(r));
      }
    }
    for (const shape of opts.shapes) {
      const demo = shape === 'demo';
      const { model, truncated, fullParams } = demo ? { model: await demoModel(), truncated: false, fullParams: 0 } : shapeModel(shape, opts.layers, opts.vocab);
      const adapter = randomAdapter(model.arch as ModelArch);
      const kinds: [string, ExportRequest][] = demo
        ? [
            ['adapter zip', { kind: 'adapter' }],
            ['merged bf16', { kind: 'merged', dtype: 'bfloat16' }],
            ['gguf q4_k_m', { kind: 'gguf', ggufType: 'q4_k_m' }],
            ['gguf q8_0', { kind: 'gguf', ggufType: 'q8_0' }],
          ]
        : [
            ['merged bf16', { kind: 'merged', dtype: 'bfloat16' }],
            ['gguf q4_k_m', { kind: 'gguf', ggufType: 'q4_k_m' }],
          ];
      const params = (model.arch as ModelArch).params.total;
      for (const [kind, request] of kinds) {
        const times: number[] = [];
        let bytes = 0;
        const cpuBlocksBefore = quantizer?.stats.cpuBlocks ?? 0;
        for (let i = 0; i < (demo ? (opts.repeats ?? 3) : 1); i++) {
          const plan = planExport(model, adapter, request, { pool, quantizer });
          const sink = demo ? new NodeDirectorySink(join(tmp, `${shape}-${kind.replace(/\W+/g, '-')}`)) : new CountingSink();
          const t0 = performance.now();
          bytes = (await runExport(plan, sink)).bytes;
          times.push((performance.now() - t0) / 1000);
        }
        const seconds = median(times);
        const weights = request.kind === 'adapter' ? 0 : params;
        results.push({
          op: 'export',
          model: demo ? 'demo' : shape,
          kind,
          layers: (model.arch as ModelArch).layers,
          params,
          workers,
          quantizer: quantizer && request.kind === 'gguf' ? 'gpu' : 'pool',
          ...(quantizer && request.kind === 'gguf' ? { cpuBlocks: quantizer.stats.cpuBlocks - cpuBlocksBefore } : {}),
          seconds,
          bytes,
          mbps: bytes / seconds / 1e6,
          weightsPerSecond: weights / seconds,
          fullModelSeconds: truncated && weights > 0 ? fullParams / (weights / seconds) : null,
        });
        console.log(describeExport(results[results.length - 1]));
      }
    }
  } finally {
    quantizer?.destroy();
    pool.close();
    rmSync(tmp, { recursive: true, force: true });
  }
  return results;
}

export function describeExport(r: ExportResult): string {
  if (r.model === 'one thread' || r.model === 'gpu') {
    const same = r.blocks ? `, ${r.identicalBlocks} of ${r.blocks} blocks identical to the CPU's` : '';
    return `export, ${r.model === 'gpu' ? 'the GPU' : 'one thread'}: ${r.kind} ${(r.weightsPerSecond / 1e6).toFixed(2)} M weights/s${same}`;
  }
  const rate = r.weightsPerSecond > 0 ? `, ${(r.weightsPerSecond / 1e6).toFixed(1)} M weights/s` : '';
  const full = r.fullModelSeconds !== null ? ` (whole model at this rate: ${r.fullModelSeconds.toFixed(0)} s)` : '';
  const size = r.bytes >= 1e9 ? `${(r.bytes / 1e9).toFixed(2)} GB` : `${(r.bytes / 1e6).toFixed(2)} MB`;
  return `export ${r.model}${r.model === 'demo' ? ' (median of 3)' : ` (${r.layers} layers, ${(r.params / 1e9).toFixed(2)} B params)`} ${r.kind}: ${r.seconds.toFixed(2)} s, ${size}, ${r.mbps.toFixed(1)} MB/s${rate}, ${r.workers} worker${r.workers === 1 ? '' : 's'}${r.kind.startsWith('gguf') && r.quantizer === 'gpu' ? ', k-quants on the GPU' : ''}${full}`;
}
