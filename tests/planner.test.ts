import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { LINEAR_NAMES, type ModelArch, parseModelConfig } from '../src/engine/arch.ts';
import { embeddingDtypeFor, loraParamCount, maxLmHeadChunk, nf4Bytes, type PlanSettings, planMemory } from '../src/engine/planner.ts';

function arch(name: string, patch: Record<string, unknown> = {}): ModelArch {
  const json = JSON.parse(readFileSync(new URL(`./fixtures/configs/${name}.json`, import.meta.url), 'utf8'));
  return parseModelConfig({ ...json, ...patch });
}

const GiB = 2 ** 30;
const ALL = LINEAR_NAMES;

// The embedded demo model: hidden 64, intermediate 172, 2 layers, 4 heads / 2 kv heads of 16,
// vocab 512, untied. Batch 2 x 8 tokens = 16 tokens.
const DEMO: PlanSettings = {
  batchSize: 2,
  seqLen: 8,
  loraR: 4,
  targets: ALL,
  gradientCheckpointing: true,
  optimizer: 'adamw_32bit',
  activationDtype: 'f32',
  lmHeadChunk: 4,
};

describe('planMemory: exact arithmetic on the demo model', () => {
  const demo = arch('webtune--demo-tiny-llama');

  it('weights', () => {
    const p = planMemory(demo, DEMO);
    // Per layer, [out, in] -> elements, NF4 bytes (n/2), 64-blocks:
    //   q [64,64] 4096 -> 2048, 64;  k, v [32,64] 2048 -> 1024, 32;  o 4096 -> 2048, 64;
    //   gate, up [172,64] and down [64,172] 11008 -> 5504, 172.
    // NF4: 2048 + 1024 + 1024 + 2048 + 3 * 5504 = 22656 per layer.
    expect(p.weights.nf4).toBe(2 * 22656);
    // One f32 absmax per block (64+32+32+64+3*172 = 708): on the GPU the engine keeps the decoded
    // values even when the file double-quantizes them.
    expect(p.weights.absmax).toBe(2 * 708 * 4);
    expect(p.weights.norms).toBe((2 * 2 * 64 + 64) * 4); // 2 norms per layer + final, f32
    expect(p.weights.embedding).toBe(512 * 64 * 2); // f16
    expect(p.weights.lmHead).toBe(512 * 64 * 2);
    expect(p.weights.codeTables).toBe(0); // WGSL constants
    expect(p.weights.total).toBe(45312 + 5664 + 1280 + 65536 + 65536); // 183,328
    expect(p.weights.quantizedLinears).toBe(14);
    // The same without double quant.
    expect(planMemory(demo, { ...DEMO, doubleQuant: false }).weights.absmax).toBe(2 * 708 * 4);
  });

  it('LoRA, gradients, optimizer', () => {
    const p = planMemory(demo, DEMO);
    // r * (in + out): q 4*128 = 512, k 4*96 = 384, v 384, o 512, gate/up/down 4*236 = 944 each.
    const perLayer = 512 + 384 + 384 + 512 + 3 * 944; // 4624
    expect(p.lora.params).toBe(2 * perLayer); // 9248
    expect(p.lora.bytes).toBe(9248 * 4);
    expect(p.loraGrads).toBe(9248 * 4);
    expect(p.optimizer).toBe(9248 * 8); // m and v, f32
    // 8-bit: per tensor 2 bytes per value + 2 f32 absmax per 256-block; A [4,in], B [out,4].
    //   256 values (A of q/k/v/o/gate/up, B of q/o/down): 512 + 8 = 520
    //   128 values (B of k/v): 256 + 8 = 264;  688 values (B of gate/up, A of down): 1376 + 24 = 1400
    const layer8 = 520 * 9 + 264 * 2 + 1400 * 3; // 9408
    expect(planMemory(demo, { ...DEMO, optimizer: 'adamw_8bit' }).optimizer).toBe(2 * layer8 + 2048);
  });

  it('activations with and without checkpointing', () => {
    const f = 4; // f32 activations
    const N = 16;
    // One layer's saved set (besides its input): rstd N f32; norm output N*64; q N*64; k, v N*32;
    // attention output N*64; logsumexp N*4 heads f32; residual after attention N*64 f32; rstd;
    // post norm output N*64; gate, up, act N*172 each; x·Aᵀ N*4 f32 for 7 targets.
    const layerSet =
      N * 4 + N * 64 * f + N * 64 * f + 2 * N * 32 * f + N * 64 * f + N * 4 * 4 + N * 64 * 4 + N * 4 + N * 64 * f + 3 * N * 172 * f + 7 * N * 4 * 4;
    expect(layerSet).toBe(59776);
    const head = N * 64 * 4 + N * 4 + N * 64 * f; // final residual, rstd, final norm output
    const ck = planMemory(demo, DEMO);
    expect(ck.activations.checkpoints).toBe(2 * N * 64 * 4 + N * 4 * 4); // both layers' inputs, the first layer's logsumexp (the last is in the layer set)
    expect(ck.activations.layers).toBe(layerSet);
    expect(ck.activations.head).toBe(head);
    expect(ck.activations.total).toBe(8448 + 59776 + 8256);
    const full = planMemory(demo, { ...DEMO, gradientCheckpointing: false });
    expect(full.activations.checkpoints).toBe(0);
    expect(full.activations.total).toBe(2 * (N * 64 * 4 + layerSet) + head); // 136,000
    // f16 activations halve the a-typed tensors; residuals and statistics stay f32.
    const half = planMemory(demo, { ...DEMO, gradientCheckpointing: false, activationDtype: 'f16' });
    const layerSet16 = layerSet - (N * 64 * 3 + 2 * N * 32 + N * 64 + 3 * N * 172) * 2;
    expect(half.activations.total).toBe(2 * (N * 64 * 4 + layerSet16) + N * 64 * 4 + N * 4 + N * 64 * 2);
  });

  it('lm_head workspace, temporaries, KV cache, totals', () => {
    const p = planMemory(demo, DEMO);
    expect(p.lmHead).toEqual({ chunkTokens: 4, bytes: 4 * 512 * 4 + 2 * 16 * 4 });
    // backward: dx + d(norm) [16,64] f32, then max(MLP 2*[16,172], attention 2*[16,64] + 2*[16,32] + D[16,4]) + d(x·Aᵀ) [16,4]
    expect(p.temporaries.backward).toBe(8192 + Math.max(22016, 12288 + 256) + 256);
    expect(p.temporaries.inputs).toBe(3 * 16 * 4);
    expect(p.temporaries.rope).toBe(8 * 16 * 4);
    expect(p.temporaries.dequantScratch).toBe(0);
    expect(p.kvCache).toEqual({ context: 8, bytes: 2 * 2 * 32 * 8 * 4 });
    expect(p.chat).toBe(512 * 4);
    expect(p.trainingBytes).toBe(183328 + 36992 + 36992 + 73984 + 76480 + 8320 + 31168); // 447,264
    expect(p.totalBytes).toBe(447264 + 4096 + 2048);
    expect(p.chatBytes).toBe(183328 + 36992 + 4096 + 2048);
    expect(p.items.reduce((s, i) => s + i.bytes, 0)).toBe(p.totalBytes);
    // A chunk longer than the batch is clamped to the tokens there are.
    expect(planMemory(demo, { ...DEMO, lmHeadChunk: 4096 }).lmHead.chunkTokens).toBe(16);
  });

  it('dequant scratch when matmuls do not dequantize on the fly', () => {
    expect(planMemory(demo, { ...DEMO, fusedDequant: false }).temporaries.dequantScratch).toBe(172 * 64 * 4);
  });
});

describe('planMemory: Llama 3.1 8B (the reference workflow)', () => {
  const bnb = arch('unsloth--Meta-Llama-3.1-8B-bnb-4bit');
  const REF: PlanSettings = {
    batchSize: 8,
    seqLen: 2048,
    loraR: 16,
    targets: ALL,
    gradientCheckpointing: true,
    optimizer: 'adamw_8bit',
    activationDtype: 'f16',
    lmHeadChunk: 256,
  };

  it('NF4 base weights on the GPU: 6,028,279,808 bytes = 5.61 GiB', () => {
    const w = planMemory(bnb, REF).weights;
    // 6,979,321,856 linear weights / 2 = 3,489,660,928 bytes of NF4 codes.
    expect(w.nf4).toBe(3_489_660_928);
    // 109,051,904 blocks of 64, an f32 absmax each: the checkpoint's double-quantized absmax
    // (1 byte each + nested f32s, 110.8 MB) is decoded on upload.
    expect(w.absmax).toBe(109_051_904 * 4);
    expect(w.embedding).toBe(128256 * 4096 * 2); // 1,050,673,152 = 0.98 GiB, f16
    expect(w.lmHead).toBe(1_050_673_152);
    expect(w.norms).toBe((32 * 2 * 4096 + 4096) * 4);
    expect(w.total).toBe(6_028_279_808);
    expect(w.total / GiB).toBeGreaterThan(5.0);
    expect(w.total / GiB).toBeLessThan(6.0);
    // landscape.md §0 (derived): NF4 ≈ 3.49 GB + absmax ≈ 0.11 GB + bf16 embed/lm_head 2.1 GB ≈ 5.7 GB
    // for bitsandbytes, which keeps the absmax compressed; we hold 0.33 GB more (6.03 GB). WebLLM's
    // q4f16_1 inference build needs 5,001 MB (its embeddings are 4-bit too). Same without double quant:
    const plain = planMemory(arch('meta-llama--Llama-3.1-8B'), { ...REF, doubleQuant: false }).weights;
    expect(plain.absmax).toBe(109_051_904 * 4);
  });

  it('LoRA r=16 on all 7 targets: 41,943,040 trainable params (PEFT / Unsloth printout)', () => {
    expect(loraParamCount(bnb, 16, ALL)).toBe(41_943_040);
    const p = planMemory(bnb, REF);
    expect(p.lora).toEqual({ params: 41_943_040, bytes: 167_772_160 });
    expect(p.items[1].detail).toContain('41,943,040 params');
    // q/v only (the classic LoRA setup): 32 * 16 * ((4096+4096) + (4096+1024)) = 6,815,744.
    expect(loraParamCount(bnb, 16, ['q_proj', 'v_proj'])).toBe(6_815_744);
  });

  it('8-bit optimizer is smaller than 32-bit', () => {
    const o8 = planMemory(bnb, REF).optimizer;
    const o32 = planMemory(bnb, { ...REF, optimizer: 'adamw_32bit' }).optimizer;
    expect(o32).toBe(41_943_040 * 8);
    // 2 bytes per value + 2 f32 per 256 values (every tensor here is a multiple of 256) + maps.
    expect(o8).toBe(41_943_040 * 2 + (41_943_040 / 256) * 8 + 2048);
    expect(o8).toBeLessThan(o32 / 3);
  });

  it('gradient checkpointing reduces activations', () => {
    for (const batchSize of [1, 8]) {
      const ck = planMemory(bnb, { ...REF, batchSize });
      const full = planMemory(bnb, { ...REF, batchSize, gradientCheckpointing: false });
      expect(ck.activations.total).toBeLessThan(full.activations.total / 8);
      // f16 checkpoints, and 31 layers' logsumexp (32 heads f32; the last layer's is in its saves)
      expect(ck.activations.checkpoints).toBe(32 * batchSize * 2048 * 4096 * 2 + 31 * batchSize * 2048 * 32 * 4);
    }
    // f32 checkpoints (bit-exact recompute) double that part.
    const f32ck = planMemory(bnb, { ...REF, checkpointDtype: 'f32' });
    expect(f32ck.activations.checkpoints).toBe(32 * 16384 * 4096 * 4 + 31 * 16384 * 32 * 4);
  });

  it('batch 1 and batch 8 totals', () => {
    const b1 = planMemory(bnb, { ...REF, batchSize: 1 }, { deviceMemoryBytes: 24 * GiB });
    const b8 = planMemory(bnb, REF, { deviceMemoryBytes: 24 * GiB });
    // Batch 1 x 2048: 7.06 GiB with the chat KV cache. For scale, Unsloth's README gives 2,972
    // tokens of context for this model on an 8 GB GPU at batch 1 (r=32, checkpoints offloaded to
    // CPU RAM, +1.4 GB CUDA overhead); 78,475 tokens on 24 GB, i.e. ~215 KB per token beyond the
    // weights and overhead, against ~255 KB per token here for the recompute + backward working set
    // (the checkpoints, 256 KiB per token, stay on the GPU: a browser cannot offload them cheaply).
    expect(b1.totalBytes).toBe(7_916_821_504);
    expect(b8.totalBytes).toBe(15_382_092_800);
    expect(b1.fits).toBe(true);
    expect(b8.fits).toBe(true);
    expect(b1.lines[0]).toBe(
      'base weights (NF4): 5.6 GiB (linears 3.3 GiB NF4 + 416.0 MiB absmax, embed_tokens 1002.0 MiB f16, lm_head 1002.0 MiB f16, norms 1.0 MiB f32)',
    );
    expect(b8.lines).toContain('total: 14.3 GiB (training 14.1 GiB, chat alone 6.0 GiB)');
    expect(b8.lines.at(-1)).toBe('fits in 24.0 GiB with 9.7 GiB to spare');
  });

  it('training (f32 activations) keeps embed_tokens and lm_head in f16 where the GPU has shader-f16', () => {
    // What the engine trains with (tools/bench/engine.ts, the trainer): f32 activations, E in
    // f16 where the device has shader-f16 (model.ts embedDtypeFor), batch 1 x 2048, checkpointing.
    const train: PlanSettings = { ...REF, batchSize: 1, activationDtype: 'f32' };
    expect(embeddingDtypeFor({ f16: true })).toBe('f16');
    expect(embeddingDtypeFor({ f16: false })).toBe('f32');
    expect(embeddingDtypeFor(null)).toBe('f16'); // unknown GPU: as before
    const f16 = planMemory(bnb, train, { f16: true });
    const f32 = planMemory(bnb, train, { f16: false });
    expect(f16.settings.embeddingDtype).toBe('f16');
    expect(f32.settings.embeddingDtype).toBe('f32');
    expect(planMemory(bnb, train).settings.embeddingDtype).toBe('f16');
    expect(planMemory(bnb, { ...train, embeddingDtype: 'f32' }, { f16: true }).settings.embeddingDtype).toBe('f32'); // asked for
    expect(f16.weights.embedding + f16.weights.lmHead).toBe(2 * 128256 * 4096 * 2);
    expect(f32.trainingBytes - f16.trainingBytes).toBe(2 * 128256 * 4096 * 2);
    // 8.57 GB (7.98 GiB) with E in f16, against 10.67 GB (9.94 GiB) with E in f32; the H200 bench
    // measured 9.91 GiB for the latter (every buffer the device created). Target: <= 10 GB.
    expect(f16.trainingBytes).toBe(8_570_619_904);
    expect(f32.trainingBytes).toBe(10_671_966_208);
    expect(f16.trainingBytes).toBeLessThan(10e9);
  });

  it('does not fit: says by how much and what to change', () => {
    const p = planMemory(bnb, { ...REF, gradientCheckpointing: false }, { deviceMemoryBytes: 24 * GiB });
    expect(p.fits).toBe(false);
    const w = p.warnings.find((x) => x.startsWith('does not fit in 24.0 GiB'));
    expect(w).toContain('turn on gradient checkpointing');
    expect(w).toContain('lower the batch size');
    const tight = planMemory(bnb, { ...REF, batchSize: 1 }, { deviceMemoryBytes: 7.5 * GiB });
    expect(tight.fits).toBe(true);
    expect(tight.warnings.some((x) => x.startsWith('tight:'))).toBe(true);
  });

  it('unknown device memory: only the per-buffer limits are checked', () => {
    const p = planMemory(bnb, REF);
    expect(p.fits).toBeNull();
    expect(p.deviceMemoryBytes).toBeNull();
    expect(p.warnings).toContain(
      'GPU memory unknown (WebGPU does not report it): enter it or pick a preset to check the total; only per-buffer limits were checked',
    );
  });

  it('buffer limits: the 1 GiB embedding must be split', () => {
    // WebGPU's default limits (256 MiB buffers, 128 MiB bindings).
    const p = planMemory(bnb, REF);
    expect(p.limits).toEqual({ maxBufferSize: 268_435_456, maxStorageBufferBindingSize: 134_217_728, source: 'spec-default' });
    expect(p.largestBuffer).toMatchObject({ name: 'embed_tokens [128256, 4096] f16', bytes: 1_050_673_152, buffers: 4, bindings: 8 });
    expect(p.warnings).toContain(
      'embed_tokens [128256, 4096] f16 is 1002.0 MiB, over maxBufferSize (256.0 MiB): it must be split into 4 buffers (8 storage bindings of at most 128.0 MiB)',
    );
    expect(p.warnings.some((w) => w.startsWith('lm_head [128256, 4096] f16'))).toBe(true);
    expect(p.warnings.some((w) => w.startsWith('MLP activation [16384, 14336] f16 is 448.0 MiB'))).toBe(true);
    // An adapter with 4 GiB buffers but 512 MiB bindings: one buffer, bound in two ranges.
    const big = planMemory(bnb, REF, { limits: { maxBufferSize: 4 * GiB, maxStorageBufferBindingSize: 512 * 2 ** 20 } });
    expect(big.limits.source).toBe('device');
    expect(big.largestBuffer.buffers).toBe(1);
    expect(big.warnings).toContain('embed_tokens [128256, 4096] f16 is 1002.0 MiB, over maxStorageBufferBindingSize (512.0 MiB): it must be split across 2 bindings');
    const huge = planMemory(bnb, REF, { limits: { maxBufferSize: 4 * GiB, maxStorageBufferBindingSize: 2 * GiB - 4 } });
    expect(huge.buffers.every((b) => !b.message)).toBe(true);
  });

  it('lm_head chunk too large for one binding', () => {
    const p = planMemory(bnb, { ...REF, lmHeadChunk: 2048 });
    expect(maxLmHeadChunk(bnb, 134_217_728)).toBe(261); // floor(128 MiB / (128256 * 4))
    const w = p.warnings.find((x) => x.startsWith('lm_head logits chunk [2048, 128256] f32'));
    expect(w).toContain('or set lmHeadChunk to at most 261 tokens');
  });

  it('tied embeddings (Llama 3.2 1B): no lm_head buffer', () => {
    const p = planMemory(arch('meta-llama--Llama-3.2-1B'), REF);
    expect(p.weights.lmHead).toBe(0);
    expect(p.buffers.some((b) => b.name.startsWith('lm_head ['))).toBe(false);
    expect(p.lines[0]).toContain('lm_head tied');
  });
});

describe('planMemory: family details', () => {
  const settings: PlanSettings = {
    batchSize: 1,
    seqLen: 512,
    loraR: 8,
    targets: ALL,
    gradientCheckpointing: true,
    optimizer: 'adamw_32bit',
    activationDtype: 'f16',
    lmHeadChunk: 128,
  };

  it('qwen2 biases are f32 weights', () => {
    const p = planMemory(arch('Qwen--Qwen2.5-0.5B'), settings);
    expect(p.weights.biases).toBe(24 * (896 + 128 + 128) * 4);
  });

  it('qwen3 keeps q/k before their norms', () => {
    const q3 = planMemory(arch('Qwen--Qwen3-0.6B'), settings);
    const names = q3.activations.tensors.map((t) => t.name);
    expect(names).toContain('q before q_norm');
    expect(q3.activations.tensors.find((t) => t.name === 'q before q_norm')?.shape).toEqual([512, 2048]);
    expect(q3.weights.norms).toBe((28 * (2 * 1024 + 2 * 128) + 1024) * 4);
  });

  it('bnb skip modules stay f16', () => {
    const a = arch('unsloth--Meta-Llama-3.1-8B-bnb-4bit', {
      quantization_config: {
        quant_method: 'bitsandbytes',
        load_in_4bit: true,
        bnb_4bit_quant_type: 'nf4',
        bnb_4bit_use_double_quant: true,
        bnb_4bit_compute_dtype: 'bfloat16',
        llm_int8_skip_modules: ['lm_head', 'model.layers.1.mlp'],
      },
    });
    const p = planMemory(a, settings);
    expect(p.weights.unquantizedLinears).toBe(3);
    expect(p.weights.unquantized).toBe(3 * 14336 * 4096 * 2);
    expect(p.weights.quantizedLinears).toBe(32 * 7 - 3);
    const mlp = nf4Bytes(14336 * 4096, true);
    expect(p.weights.nf4).toBe(3_489_660_928 - 3 * mlp.nf4);
  });

  it('sequence longer than the model allows', () => {
    const p = planMemory(arch('TinyLlama--TinyLlama-1.1B-Chat-v1.0'), { ...settings, seqLen: 4096 });
    expect(p.warnings).toContain("seqLen 4096 is longer than the model's max_position_embeddings (2048)");
    const m = planMemory(arch('mistralai--Mistral-7B-v0.1'), { ...settings, seqLen: 8192 });
    expect(m.warnings.some((w) => w.includes("sliding window (4096)"))).toBe(true);
  });

  it('rejects bad settings', () => {
    const a = arch('webtune--demo-tiny-llama');
    expect(() => planMemory(a, { ...settings, batchSize: 0 })).toThrow('batchSize must be a positive integer');
    expect(() => planMemory(a, { ...settings, seqLen: 1.5 })).toThrow('seqLen must be a positive integer');
    expect(() => planMemory(a, { ...settings, targets: ['lm_head' as never] })).toThrow('unknown LoRA target "lm_head"');
  });
});
