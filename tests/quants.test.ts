// Quantizers: round-trip error on Gaussian data per type, block layouts on hand-built blocks (bytes
// written here by hand from the spec, read by our dequantizers), rounding rules, and the preset
// rules deciding which tensor gets which type (llama-quantize's llama_tensor_get_type).
// Bit-exactness against ggml itself is tests/quants-ref.test.ts.

import { describe, expect, it } from 'vitest';
import { parseModelConfig } from '../src/engine/arch.ts';
import { f32ToF16Bits } from '../src/io/dtype.ts';
import { planGgufTensors, typeCounts } from '../src/io/gguf-model.ts';
import { GGMLType, Q2_K, Q3_K, Q4_0, Q4_K, Q5_K, Q6_K, Q8_0, ggmlRowBytes, ggmlTypeName, quantFormat } from '../src/io/quants/index.ts';
import type { GGMLTypeName } from '../src/io/quants/index.ts';
import { kquantInternals } from '../src/io/quants/kquants.ts';
import { GGUF_PRESETS, LLAMA_FTYPE, parseGgufPreset, presetTensorType, useMoreBits, type GgufPreset } from '../src/io/quants/presets.ts';
import { gaussian } from './fixtures/gguf/helpers.ts';

const f16 = (x: number) => [f32ToF16Bits(x) & 0xff, f32ToF16Bits(x) >> 8];

describe('round trip on N(0, 1) data (64K values)', () => {
  // Relative RMS error ||dequant(quant(x)) - x|| / ||x||. Measured (our quantizers are bit-exact
  // with ggml's): F16 0.021%, BF16 0.167%, Q8_0 0.536%, Q6_K 1.78%, Q5_1 3.80%, Q5_K 3.62%,
  // Q5_0 4.29%, Q4_K 7.15%, Q4_1 7.87%, Q4_0 8.63%, Q3_K 15.2%, Q2_K 29.7%. Bounds: about 10% above.
  const BOUNDS: [GGMLTypeName, number][] = [
    ['F16', 0.00025],
    ['BF16', 0.0019],
    ['Q8_0', 0.006],
    ['Q6_K', 0.02],
    ['Q5_1', 0.042],
    ['Q5_K', 0.04],
    ['Q5_0', 0.047],
    ['Q4_K', 0.08],
    ['Q4_1', 0.087],
    ['Q4_0', 0.095],
    ['Q3_K', 0.17],
    ['Q2_K', 0.33],
  ];
  const x = gaussian(1 << 16, 7);
  const errors = new Map<string, number>();
  for (const [name, bound] of BOUNDS) {
    it(`${name} < ${(bound * 100).toFixed(3)}%`, () => {
      const f = quantFormat(GGMLType[name]);
      const q = f.quantize(x);
      expect(q.length).toBe(ggmlRowBytes(f.type, x.length));
      const y = f.dequantize(q);
      let num = 0;
      let den = 0;
      for (let i = 0; i < x.length; i++) {
        num += (y[i] - x[i]) ** 2;
        den += x[i] ** 2;
      }
      const err = Math.sqrt(num / den);
      errors.set(name, err);
      expect(err).toBeLessThan(bound);
      expect(err).toBeGreaterThan(bound / 2); // not suspiciously exact
    });
  }
  it('fewer bits, more error', () => {
    const order = ['Q8_0', 'Q6_K', 'Q5_K', 'Q4_K', 'Q3_K', 'Q2_K'].map((n) => errors.get(n)!);
    expect(order.every((e, i) => i === 0 || e > order[i - 1])).toBe(true);
  });
  it('scale does not matter (weights of std 0.02)', () => {
    const xs = x.map((v) => v * 0.02);
    const y = Q4_K.dequantize(Q4_K.quantize(xs));
    let num = 0;
    let den = 0;
    for (let i = 0; i < xs.length; i++) {
      num += (y[i] - xs[i]) ** 2;
      den += xs[i] ** 2;
    }
    expect(Math.abs(Math.sqrt(num / den) - errors.get('Q4_K')!)).toBeLessThan(0.002);
  });
});

describe('rounding', () => {
  it('nearest_int rounds half to even (float32 magic-number trick)', () => {
    const n = kquantInternals.nearestInt;
    expect([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4999998, 3.5000002].map((v) => n(Math.fround(v)) + 0)).toEqual([0, 2, 2, 0, -2, -2, 2, 4]);
  });
  it('Q8_0 uses roundf: halves go away from zero', () => {
    const x = new Float32Array(32);
    x.set([127, 2.5, -2.5, 0.5, -0.5, 1.5, -126.5]);
    const q = Q8_0.quantize(x);
    expect([...q.subarray(0, 2)]).toEqual(f16(1));
    expect(Array.from(new Int8Array(q.buffer, 2, 7))).toEqual([127, 3, -3, 1, -1, 2, -127]);
  });
  it('Q4_0 truncates x/d + 8.5 and caps at 15', () => {
    // d = max/-8 with max = the value of largest magnitude (2.0): d = -0.25; q = trunc(x/d + 8.5).
    const q = Array.from({ length: 32 }, (_, j) => j % 16);
    const x = Float32Array.from(q, (v) => (v - 8) * -0.25);
    const out = Q4_0.quantize(x);
    expect([...out.subarray(0, 2)]).toEqual(f16(-0.25));
    expect([...out.subarray(2)]).toEqual(Array.from({ length: 16 }, (_, j) => q[j] | (q[j + 16] << 4)));
    expect(Array.from(Q4_0.dequantize(out))).toEqual(Array.from(x));
  });
  it('zero blocks decode as zeros for every type (d = 0; Q4_0/Q5_0 store the offset level 8/16)', () => {
    for (const name of ['Q8_0', 'Q4_0', 'Q4_1', 'Q5_0', 'Q5_1', 'Q2_K', 'Q3_K', 'Q4_K', 'Q5_K', 'Q6_K'] as const) {
      const f = quantFormat(GGMLType[name]);
      const q = f.quantize(new Float32Array(512));
      if (name !== 'Q4_0' && name !== 'Q5_0') expect(q.every((b) => b === 0), name).toBe(true);
      expect(f.dequantize(q).every((v) => v === 0), name).toBe(true);
    }
    expect(Q4_0.quantize(new Float32Array(32))[2]).toBe(0x88);
  });
  it('Q8_0 keeps exact multiples of a power-of-two scale', () => {
    const x = Float32Array.from({ length: 64 }, (_, j) => ((j * 37) % 255) - 127).map((v) => v / 64);
    x[0] = 127 / 64;
    x[32] = -127 / 64;
    expect(Array.from(Q8_0.dequantize(Q8_0.quantize(x)))).toEqual(Array.from(x));
  });
});

/** Packs 6-bit scales and mins of Q4_K/Q5_K as formats.md §2.3 writes it. */
function packK4(sc: number[], m: number[]): number[] {
  const q = new Array<number>(12).fill(0);
  for (let j = 0; j < 8; j++) {
    if (j < 4) {
      q[j] = sc[j];
      q[j + 4] = m[j];
    } else {
      q[j + 4] = (sc[j] & 15) | ((m[j] & 15) << 4);
      q[j - 4] |= (sc[j] >> 4) << 6;
      q[j] |= (m[j] >> 4) << 6;
    }
  }
  return q;
}

describe('block layouts (hand-built blocks, formats.md §2)', () => {
  const SC = [1, 2, 3, 4, 40, 50, 60, 63];
  const MN = [0, 5, 10, 15, 20, 33, 47, 63];
  const level = (e: number, bits: number) => (e * 7 + 3) % (1 << bits);

  it('Q4_K: {f16 d, f16 dmin, 12 bytes of 6-bit scales/mins, 128 nibble bytes}', () => {
    const d = 0.5;
    const dmin = 0.25;
    const L = Array.from({ length: 256 }, (_, e) => level(e, 4));
    const qs = Array.from({ length: 128 }, (_, b) => L[64 * (b >> 5) + (b & 31)] | (L[64 * (b >> 5) + 32 + (b & 31)] << 4));
    const block = Uint8Array.from([...f16(d), ...f16(dmin), ...packK4(SC, MN), ...qs]);
    expect(block.length).toBe(144);
    const y = Q4_K.dequantize(block);
    for (let e = 0; e < 256; e++) expect(y[e]).toBe(d * SC[e >> 5] * L[e] - dmin * MN[e >> 5]);
  });

  it('Q5_K: as Q4_K plus qh[32] holding bit 4 (bit 2c of qh[l] for the low half of chunk c)', () => {
    const d = 0.5;
    const dmin = 0.25;
    const L = Array.from({ length: 256 }, (_, e) => level(e, 5));
    const qh = new Array<number>(32).fill(0);
    const ql = new Array<number>(128).fill(0);
    for (let c = 0; c < 4; c++) {
      for (let l = 0; l < 32; l++) {
        const lo = L[64 * c + l];
        const hi = L[64 * c + 32 + l];
        ql[32 * c + l] = (lo & 15) | ((hi & 15) << 4);
        qh[l] |= ((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1));
      }
    }
    const block = Uint8Array.from([...f16(d), ...f16(dmin), ...packK4(SC, MN), ...qh, ...ql]);
    expect(block.length).toBe(176);
    const y = Q5_K.dequantize(block);
    for (let e = 0; e < 256; e++) expect(y[e]).toBe(d * SC[e >> 5] * L[e] - dmin * MN[e >> 5]);
  });

  it('Q6_K: {ql[128], qh[64], int8 scales[16], f16 d}, x = d * scale * (q - 32)', () => {
    const d = 1 / 128;
    const S = Array.from({ length: 16 }, (_, g) => g * 16 - 128 + (g === 15 ? 7 : 0)); // -128 .. 127
    const L = Array.from({ length: 256 }, (_, e) => level(e, 6));
    const ql = new Array<number>(128).fill(0);
    const qh = new Array<number>(64).fill(0);
    for (let h = 0; h < 2; h++) {
      for (let l = 0; l < 32; l++) {
        const [a, b, c, e] = [0, 32, 64, 96].map((k) => L[128 * h + k + l]);
        ql[64 * h + l] = (a & 15) | ((c & 15) << 4);
        ql[64 * h + 32 + l] = (b & 15) | ((e & 15) << 4);
        qh[32 * h + l] = (a >> 4) | ((b >> 4) << 2) | ((c >> 4) << 4) | ((e >> 4) << 6);
      }
    }
    const block = Uint8Array.from([...ql, ...qh, ...S.map((s) => s & 255), ...f16(d)]);
    expect(block.length).toBe(210);
    const y = Q6_K.dequantize(block);
    for (let e = 0; e < 256; e++) expect(y[e]).toBe(d * S[e >> 4] * (L[e] - 32));
  });

  it('Q3_K: {hmask[32], qs[64], 12 bytes of 6-bit scales, f16 d}; a clear hmask bit means -4', () => {
    const d = 0.25;
    const S = Array.from({ length: 16 }, (_, g) => (g * 4 + 1) % 64); // stored 6-bit, used as S - 32
    const L = Array.from({ length: 256 }, (_, e) => level(e, 3)); // 0..7, value L - 4
    const hmask = new Array<number>(32).fill(0);
    for (let e = 0; e < 256; e++) if (L[e] > 3) hmask[e % 32] |= 1 << (e >> 5);
    const low = L.map((v) => v & 3);
    const qs = new Array<number>(64).fill(0);
    for (let n = 0; n < 256; n += 128) for (let l = 0; l < 32; l++) qs[n / 4 + l] = low[n + l] | (low[n + l + 32] << 2) | (low[n + l + 64] << 4) | (low[n + l + 96] << 6);
    const sc = new Array<number>(12).fill(0);
    for (let g = 0; g < 16; g++) {
      if (g < 8) sc[g] = S[g] & 15;
      else sc[g - 8] |= (S[g] & 15) << 4;
      sc[8 + (g % 4)] |= (S[g] >> 4) << (2 * (g >> 2));
    }
    const block = Uint8Array.from([...hmask, ...qs, ...sc, ...f16(d)]);
    expect(block.length).toBe(110);
    const y = Q3_K.dequantize(block);
    for (let e = 0; e < 256; e++) expect(y[e]).toBe(d * (S[e >> 4] - 32) * (L[e] - 4));
  });

  it('Q2_K: {scales[16] (low nibble scale, high nibble min), qs[64], f16 d, f16 dmin}', () => {
    const d = 0.5;
    const dmin = 0.125;
    const sc = Array.from({ length: 16 }, (_, g) => g);
    const mn = Array.from({ length: 16 }, (_, g) => 15 - g);
    const L = Array.from({ length: 256 }, (_, e) => level(e, 2));
    const qs = new Array<number>(64).fill(0);
    for (let n = 0; n < 256; n += 128) for (let l = 0; l < 32; l++) qs[n / 4 + l] = L[n + l] | (L[n + l + 32] << 2) | (L[n + l + 64] << 4) | (L[n + l + 96] << 6);
    const block = Uint8Array.from([...sc.map((s, g) => s | (mn[g] << 4)), ...qs, ...f16(d), ...f16(dmin)]);
    expect(block.length).toBe(84);
    const y = Q2_K.dequantize(block);
    for (let e = 0; e < 256; e++) expect(y[e]).toBe(d * sc[e >> 4] * L[e] - dmin * mn[e >> 4]);
  });

  it('quantizing what a block decodes to gives a block that decodes the same (Q4_K, Q6_K)', () => {
    for (const f of [Q4_K, Q6_K, Q8_0]) {
      const y = f.dequantize(f.quantize(gaussian(1024, 3)));
      const y2 = f.dequantize(f.quantize(y));
      let worst = 0;
      for (let i = 0; i < y.length; i++) worst = Math.max(worst, Math.abs(y2[i] - y[i]));
      expect(worst, f.name).toBeLessThan(1e-3);
    }
  });

  it('refuses partial blocks', () => {
    expect(() => Q4_K.quantize(new Float32Array(100))).toThrow(/256-element blocks/);
    expect(() => Q8_0.dequantize(new Uint8Array(33))).toThrow(/34-byte blocks/);
  });
});

// ---------------------------------------------------------------------------------------------

describe('preset rules (llama-quantize llama_tensor_get_type)', () => {
  const llama31 = parseModelConfig({
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: 4096,
    intermediate_size: 14336,
    num_hidden_layers: 32,
    num_attention_heads: 32,
    num_key_value_heads: 8,
    vocab_size: 128256,
    rms_norm_eps: 1e-5,
    rope_theta: 500000,
    max_position_embeddings: 131072,
    rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
    tie_word_embeddings: false,
  });

  it('use_more_bits picks 16 of 32 layers: the first and last 4, then every third', () => {
    const picked = Array.from({ length: 32 }, (_, i) => i).filter((i) => useMoreBits(i, 32));
    expect(picked).toEqual([0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]);
  });

  it('Llama 3.1 8B Q4_K_M: 66 f32 (with rope_freqs) + 193 q4_K + 33 q6_K, as llama.cpp logs it', () => {
    const plan = planGgufTensors(llama31, 'Q4_K_M');
    expect(typeCounts(plan)).toEqual({ F32: 66, Q4_K: 193, Q6_K: 33 });
    const q6 = plan.filter((t) => t.type === GGMLType.Q6_K).map((t) => t.name);
    expect(q6).toContain('output.weight');
    expect(q6).toContain('blk.6.attn_v.weight');
    expect(q6).toContain('blk.6.ffn_down.weight');
    expect(q6).not.toContain('blk.5.attn_v.weight');
    expect(plan.find((t) => t.name === 'token_embd.weight')!.type).toBe(GGMLType.Q4_K);
  });

  it('Llama 3.1 8B, the other presets', () => {
    expect(typeCounts(planGgufTensors(llama31, 'Q5_K_M'))).toEqual({ F32: 66, Q5_K: 193, Q6_K: 33 });
    expect(typeCounts(planGgufTensors(llama31, 'Q6_K'))).toEqual({ F32: 66, Q6_K: 226 });
    expect(typeCounts(planGgufTensors(llama31, 'Q8_0'))).toEqual({ F32: 66, Q8_0: 226 });
    expect(typeCounts(planGgufTensors(llama31, 'F16'))).toEqual({ F32: 66, F16: 226 });
    expect(typeCounts(planGgufTensors(llama31, 'BF16'))).toEqual({ F32: 66, BF16: 226 });
    // Q3_K_M: attn_v Q5_K in layers 0-1 else Q4_K; ffn_down Q5_K below n/16 = 2 else Q4_K; attn_output Q4_K.
    expect(typeCounts(planGgufTensors(llama31, 'Q3_K_M'))).toEqual({ F32: 66, Q3_K: 129, Q4_K: 92, Q5_K: 4, Q6_K: 1 });
    // Q2_K: attn_v Q4_K (n_gqa 4), ffn_down and attn_output Q3_K.
    expect(typeCounts(planGgufTensors(llama31, 'Q2_K'))).toEqual({ F32: 66, Q2_K: 129, Q3_K: 64, Q4_K: 32, Q6_K: 1 });
  });

  const q = (name: string, ne0 = 4096, extra: Partial<Parameters<typeof presetTensorType>[1]> = {}) => ({
    name,
    ne: [ne0, 4096],
    nLayer: 32,
    nGqa: 4,
    tied: false,
    ...extra,
  });
  const t = (preset: GgufPreset, query: Parameters<typeof presetTensorType>[1]) => ggmlTypeName(presetTensorType(preset, query));

  it('attn_v by preset and layer', () => {
    expect(t('Q2_K', q('blk.0.attn_v.weight'))).toBe('Q4_K');
    expect(t('Q2_K', q('blk.0.attn_v.weight', 4096, { nGqa: 1 }))).toBe('Q3_K');
    expect(t('Q3_K_M', q('blk.1.attn_v.weight'))).toBe('Q5_K');
    expect(t('Q3_K_M', q('blk.2.attn_v.weight'))).toBe('Q4_K');
    expect(t('Q5_K_M', q('blk.31.attn_v.weight'))).toBe('Q6_K');
    expect(t('Q5_K_M', q('blk.7.attn_v.weight'))).toBe('Q5_K');
    expect(t('Q4_K_M', q('blk.7.attn_v.weight', 4096, { is70B: true }))).toBe('Q5_K');
  });

  it('tied embeddings: token_embd takes the output type', () => {
    for (const p of ['Q2_K', 'Q3_K_M', 'Q4_K_M', 'Q5_K_M', 'Q6_K'] as const) {
      expect(t(p, q('token_embd.weight', 2048, { tied: true }))).toBe('Q6_K');
      expect(t(p, q('output.weight', 2048))).toBe('Q6_K');
    }
    expect(t('Q8_0', q('token_embd.weight', 2048, { tied: true }))).toBe('Q8_0');
    expect(t('Q4_0', q('output.weight', 2048))).toBe('Q6_K');
  });

  it('shape fallback when a row is not a whole number of 256 (SmolLM-135M: hidden 576)', () => {
    expect(t('Q4_K_M', q('blk.0.attn_q.weight', 576))).toBe('Q5_0');
    expect(t('Q5_K_M', q('blk.0.attn_q.weight', 576))).toBe('Q5_1');
    expect(t('Q3_K_M', q('blk.5.attn_q.weight', 576))).toBe('Q4_0');
    expect(t('Q6_K', q('blk.0.attn_q.weight', 576))).toBe('Q8_0');
    expect(t('Q4_K_M', q('output.weight', 576))).toBe('Q8_0');
    expect(t('Q4_K_M', q('token_embd.weight', 576, { tied: true }))).toBe('Q8_0');
    // Not even a multiple of 32 (the demo's intermediate 172): F16.
    expect(t('Q4_K_M', q('blk.0.ffn_down.weight', 172))).toBe('F16');
    expect(t('Q8_0', q('blk.0.ffn_down.weight', 172))).toBe('F16');
  });

  it('1-D tensors and norms stay F32; F32 keeps everything F32', () => {
    expect(t('Q4_K_M', { ...q('blk.0.attn_norm.weight'), ne: [4096] })).toBe('F32');
    expect(t('Q4_K_M', { ...q('rope_freqs.weight'), ne: [64] })).toBe('F32');
    expect(t('Q4_K_M', { ...q('blk.0.attn_q.bias'), ne: [4096] })).toBe('F32');
    expect(t('F32', q('blk.0.attn_q.weight'))).toBe('F32');
    expect(t('F16', q('blk.0.attn_q.weight'))).toBe('F16');
  });

  it('preset names and file types', () => {
    expect(parseGgufPreset('q4_k_m')).toBe('Q4_K_M');
    expect(() => parseGgufPreset('q4_k_s')).toThrow(/unknown GGUF type/);
    expect(GGUF_PRESETS.map((p) => LLAMA_FTYPE[p])).toEqual([0, 1, 32, 7, 2, 18, 17, 15, 12, 10]);
  });
});
