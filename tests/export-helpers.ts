// Shared by tests/export-*.test.ts: the demo model and a 256-wide random llama as ExportModels (base
// weights counted, so a test can tell whether an export read any), random adapters, and sinks that
// fail on purpose.
import { join } from 'node:path';
import { allTensorSpecs, parseModelConfig, type ModelArch } from '../src/engine/arch.ts';
import { resolveTemplate } from '../src/data/templates.ts';
import { tokenizerFromFiles } from '../src/data/tokenizer-load.ts';
import type { ExportModel } from '../src/io/export-job.ts';
import type { ExportArch, WeightSource } from '../src/io/export-arch.ts';
import { loraTargets, type LoraAdapter, type LoraSettings } from '../src/io/peft.ts';
import type { ExportSink, SinkFile } from '../src/io/sink.ts';
import { DEMO, byteTokenizerJson, gaussian, openFile, readJson } from './fixtures/gguf/helpers.ts';

export const ALL_TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

/** A weight source that counts its reads. */
export function counted(source: WeightSource): WeightSource & { reads: number } {
  const c = {
    reads: 0,
    read: (n: string) => {
      c.reads++;
      return source.read(n);
    },
    ...(source.readRows
      ? {
          readRows: (n: string, s: number, k: number) => {
            c.reads++;
            return source.readRows!(n, s, k);
          },
        }
      : {}),
  };
  return c;
}

/** The demo model (public/demo/model) with the ChatML template it trains with. */
export async function demoExportModel(): Promise<ExportModel & { base: WeightSource & { reads: number } }> {
  const config = readJson(join(DEMO, 'config.json'));
  const tokenizerJson = readJson(join(DEMO, 'tokenizer.json'));
  const tokenizerConfig = readJson(join(DEMO, 'tokenizer_config.json'));
  const arch = parseModelConfig(config);
  const st = await openFile(join(DEMO, 'model.safetensors'));
  const tok = await tokenizerFromFiles('demo', { tokenizerJson, tokenizerConfig });
  const t = resolveTemplate('chatml', tok.info);
  return {
    id: 'webtune/demo-tiny-llama',
    arch,
    config,
    generationConfig: readJson(join(DEMO, 'generation_config.json')),
    tokenizerJson,
    tokenizerConfig,
    tensors: allTensorSpecs(arch).map((s) => ({ name: s.name, shape: s.shape })),
    base: counted({ read: (n) => st.readF32(n) }),
    baseOrigin: '16-bit',
    template: { id: t.id, exportSource: t.exportSource, eosRename: t.eosRename },
  };
}

export const WIDE_CONFIG = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  hidden_size: 256,
  intermediate_size: 512,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  vocab_size: 256,
  rms_norm_eps: 1e-5,
  max_position_embeddings: 256,
  rope_theta: 10000,
  tie_word_embeddings: false,
  bos_token_id: 1,
  eos_token_id: 2,
};

/** A 256-wide random llama: rows of 256 and 512, so every k-quant is used (no fallbacks). */
export function wideExportModel(): ExportModel & { base: WeightSource & { reads: number } } {
  const arch: ModelArch = parseModelConfig(WIDE_CONFIG);
  const weights = new Map<string, Float32Array>();
  const cols = new Map(allTensorSpecs(arch).map((t) => [t.name, t.shape[t.shape.length - 1]]));
  allTensorSpecs(arch).forEach((t, i) => {
    const n = t.shape.reduce((a, b) => a * b, 1);
    const w = gaussian(n, 500 + i, t.kind === 'linear' ? 1 / Math.sqrt(t.shape[1]) : 1);
    if (t.kind === 'norm') w.fill(1);
    weights.set(t.name, w);
  });
  return {
    id: 'webtune/wide-random-llama',
    arch,
    config: WIDE_CONFIG,
    tokenizerJson: byteTokenizerJson(),
    tokenizerConfig: {},
    tensors: allTensorSpecs(arch).map((s) => ({ name: s.name, shape: s.shape })),
    base: counted({
      read: async (n) => weights.get(n)!,
      readRows: async (n, s, k) => {
        const c = cols.get(n)!;
        return weights.get(n)!.subarray(s * c, (s + k) * c);
      },
    }),
    baseOrigin: '16-bit',
    template: null,
  };
}

export function randomAdapter(arch: ExportArch, seed: number, settings: Partial<LoraSettings> = {}): LoraAdapter {
  const s: LoraSettings = { r: 8, loraAlpha: 16, useRslora: true, targetModules: ALL_TARGETS, ...settings };
  const modules = new Map();
  loraTargets(arch, s).forEach((t, i) => {
    modules.set(t.path, { a: gaussian(s.r * t.linear.in, seed + 2 * i, 0.1), b: gaussian(t.linear.out * s.r, seed + 2 * i + 1, 0.1) });
  });
  return { settings: s, modules };
}

/** A sink over another whose writes reject like a full disk once `limit` bytes are written. */
export function fillingSink(inner: ExportSink, limit: number, error: () => Error = () => new DOMException('The quota has been exceeded.', 'QuotaExceededError')): ExportSink {
  let written = 0;
  return {
    where: inner.where,
    fullAdvice: inner.fullAdvice,
    async create(name, size): Promise<SinkFile> {
      const f = await inner.create(name, size);
      return {
        async write(chunk) {
          if (written + chunk.length > limit) {
            // Part of the chunk lands, as on a real disk.
            await f.write(chunk.subarray(0, limit - written));
            written = limit;
            throw error();
          }
          written += chunk.length;
          await f.write(chunk);
        },
        close: () => f.close(),
      };
    },
    commit: () => inner.commit(),
    discard: () => inner.discard(),
  };
}
