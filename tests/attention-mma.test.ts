// The tensor-core attention, forward and backward (src/engine/attention-mma.ts). Where the device has f16 subgroup
// matrices its checks against float64 run here; elsewhere (lavapipe, SwiftShader: none) they come from
// the benchmark machine: tests/fixtures/attention-mma holds its record, which must be for the shaders
// this tree generates and within today's tolerances. The same checks run here on the SIMT kernels,
// which encodeAttention takes on such devices.
import { beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { testGpu } from './gpu/device.ts';
import { Kernels } from '../src/engine/kernels.ts';
import type { Gpu, GpuInfo } from '../src/engine/gpu.ts';
import { attentionMmaApplies, attentionMmaBackwardApplies, attentionMmaBackwardSource, attentionMmaSource } from '../src/engine/attention-mma.ts';
import { createActivations, destroyActivations, forwardTensors } from '../src/engine/activations.ts';
import { encodeAttention } from '../src/engine/attention.ts';
import { encodeAttentionBackward } from '../src/engine/attention-backward.ts';
import { parseModelConfig } from '../src/engine/arch.ts';
import { createTensor } from '../src/engine/tensor.ts';
import { attentionMmaCases, attentionMmaChecks, attentionMmaDigest, attentionMmaInputs, checkAttentionMma, withinAttentionTolerance, type AttentionMmaCheck } from '../src/engine/attention-mma-check.ts';

let gpu: Gpu;
let kernels: Kernels;
beforeAll(async () => {
  gpu = await testGpu();
  kernels = new Kernels(gpu);
});

describe('tensor-core attention: where it applies and what it generates', () => {
  const info = (over: Partial<GpuInfo>) => ({ mmaF16: true, subgroups: true, ...over }) as GpuInfo;

  it('applies to f16 and f32 storage and head dims that are multiples of 16 up to 128, on devices with f16 subgroup matrices', () => {
    for (const D of [16, 32, 64, 96, 128]) {
      expect(attentionMmaApplies(info({}), 'f16', D)).toBe(true);
      expect(attentionMmaApplies(info({}), 'f32', D)).toBe(true);
    }
    for (const D of [8, 72, 100, 144, 256]) expect(attentionMmaApplies(info({}), 'f16', D), `D ${D}`).toBe(false);
    expect(attentionMmaApplies(info({ mmaF16: false }), 'f16', 128)).toBe(false);
    expect(attentionMmaApplies(info({ subgroups: false }), 'f16', 128)).toBe(false);
    // The backward: head dims of 32s (dkv's subgroups take half a row each, in 16-wide blocks).
    for (const D of [32, 64, 96, 128]) expect(attentionMmaBackwardApplies(info({}), 'f32', D)).toBe(true);
    for (const D of [16, 48, 80, 112]) expect(attentionMmaBackwardApplies(info({}), 'f32', D), `D ${D}`).toBe(false);
    expect(attentionMmaBackwardApplies(info({ mmaF16: false }), 'f32', 128)).toBe(false);
  });

  it('reads every subgroup matrix at a constant offset into its block of workgroup memory', () => {
    for (let D = 16; D <= 128; D += 16) {
      for (const [dtype, qkv] of [['f16', 'f16'], ['f32', 'f32'], ['f32', 'f16']] as const) {
        const src = attentionMmaSource(D, dtype, qkv);
        expect(src).toContain(`alias Q = ${qkv};`);
        const calls = [...src.matchAll(/subgroupMatrix(?:Load<[^>]*>[^>]*>|Store<[^>]*>)\(&(\w+)\[(\w+)\], ([^,]+),/g)];
        // q (D / 16); s (4 key blocks x D / 16) and its four stores; p (4), p·v (4 x D / 16), D / 16
        // stores of o; o's rescale (D / 16 stores and loads).
        const ds = D / 16;
        expect(calls.length, `D ${D}`).toBe(ds + (4 * ds + 4) + 4 + 4 * ds + ds + 2 * ds);
        for (const [call, , , offset] of calls) expect(offset, call).toMatch(/^\d+u$/);
        expect(src).not.toContain('//{{');
      }
    }
    for (const D of [32, 64, 96, 128]) {
      for (const [dtype, qkv] of [['f16', 'f16'], ['f32', 'f32'], ['f32', 'f16']] as const) {
        const src = attentionMmaBackwardSource(D, dtype, qkv);
        expect(src).toContain(`alias Q = ${qkv};`);
        const calls = [...src.matchAll(/subgroupMatrix(?:Load<[^>]*>[^>]*>|Store<[^>]*>)\(&(\w+)\[([^\]]+)\], ([^,]+),/g)];
        // dq: q and dO (D / 16 each), s and dp (2 x 2 x D / 16) and their 4 stores, ds (2), ds·k (2 x D / 16), D / 16 stores of dq.
        // dkv: k and v (D / 16 each), sᵀ and dpᵀ (2 x D / 16) and 2 stores, pᵀ and dsᵀ (2 x 2), the products (2 x 2 x D / 32), D / 16 stores.
        const ds = D / 16;
        expect(calls.length, `D ${D}`).toBe(2 * ds + 4 * ds + 4 + 2 + 2 * ds + ds + (2 * ds + 2 * ds + 2 + 4 + 2 * ds + ds));
        for (const [call, , , offset] of calls) expect(offset, call).toMatch(/^\d+u$/);
        expect(src).not.toContain('//{{');
      }
    }
    expect(() => attentionMmaBackwardSource(48, 'f32')).toThrow('head dim 48 is not a multiple of 32 up to 128');
    expect(() => attentionMmaSource(72, 'f16')).toThrow('head dim 72 is not a multiple of 16 up to 128');
    expect(() => attentionMmaSource(64, 'bf16' as 'f16')).toThrow('storage type bf16 is not f16 or f32');
    expect(() => attentionMmaSource(64, 'f16', 'f32')).toThrow('q, k, v in f32 beside f16');
  });
});

describe('f16 q, k, v beside f32 (training on the tensor cores)', () => {
  const config = (name: string) => parseModelConfig(JSON.parse(readFileSync(join(import.meta.dirname, 'fixtures/configs', name), 'utf8')));
  const small = (arch: ReturnType<typeof config>) => ({ ...arch, layers: 1, vocabSize: 64 });

  it("training's arena keeps them in f16 where the tensor-core attention takes them, in calls of more than the GEMV's rows", () => {
    const llama = small(config('meta-llama--Llama-3.1-8B-Instruct.json'));
    const qwen3 = small(config('Qwen--Qwen3-0.6B.json')); // q/k norms: their backward reads q and k before the norms
    const mma = new Kernels({ ...gpu, info: { ...gpu.info, mmaF16: true, subgroups: true } });
    const none = new Kernels({ ...gpu, info: { ...gpu.info, mmaF16: false } });
    const cases = [
      [mma, llama, 'f32', {}, 'f16'],
      [mma, llama, 'f32', { qkvF16: false }, 'f32'],
      [mma, llama, 'f32', { checkpoints: false }, 'f32'], // inference: the KV cache's decode path takes one type
      [mma, llama, 'f16', {}, 'f16'],
      [mma, qwen3, 'f32', {}, 'f32'],
      [none, llama, 'f32', {}, 'f32'],
    ] as const;
    for (const [k, arch, dtype, opts, want] of cases) {
      const a = createActivations(k, arch, dtype, { batch: 1, seqLen: 16, loss: false, ...opts });
      expect(a.qkvDtype, `${arch.modelType} ${dtype} ${JSON.stringify(opts)} mma ${k.gpu.info.mmaF16}`).toBe(want);
      const t = forwardTensors(a, 1, 16);
      expect([t.q.dtype, t.k.dtype, t.v.dtype, t.qRaw.dtype]).toEqual([want, want, want, want]);
      expect(t.attn.dtype).toBe(dtype);
      // A call of up to NF4_GEMV_MAX_ROWS (8) tokens takes the GEMV, which writes x's type: the buffers keep its size.
      expect(forwardTensors(a, 1, 8).q.dtype).toBe(dtype);
      expect(a.q.size).toBe(16 * arch.heads * arch.headDim * (dtype === 'f32' ? 4 : 2));
      destroyActivations(a);
    }
  });

  it('are refused, with what to do, where the tensor cores do not take them', (ctx) => {
    if (gpu.info.mmaF16 || !gpu.info.f16) ctx.skip();
    const s = { batch: 1, tq: 20, skv: 20, heads: 2, kvHeads: 1, headDim: 64 };
    const q = createTensor(gpu.device, [1, 20, 2, 64], 'f16');
    const kv = () => createTensor(gpu.device, [1, 20, 1, 64], 'f16');
    const [k, v] = [kv(), kv()];
    const o = createTensor(gpu.device, [1, 20, 2, 64], 'f32');
    const lse = createTensor(gpu.device, [1, 2, 20], 'f32');
    const record = (f: (pass: GPUComputePassEncoder) => void) => {
      const enc = gpu.device.createCommandEncoder();
      const pass = enc.beginComputePass();
      try {
        f(pass);
      } finally {
        pass.end();
      }
    };
    expect(() => record((pass) => encodeAttention(kernels, pass, { q, k, v, o, lse }, s))).toThrow('attention: o is f32 but q is f16 (f16 q, k, v beside an f32 o take the tensor-core attention');
    const g = (shape: number[]) => createTensor(gpu.device, shape, 'f32');
    const t = { q, k, v, o, lse, dout: g([1, 20, 2, 64]), dq: g([1, 20, 2, 64]), dk: g([1, 20, 1, 64]), dv: g([1, 20, 1, 64]), stats: g([1, 2, 20, 3]) };
    expect(() => record((pass) => encodeAttentionBackward(kernels, pass, t, s))).toThrow('o is f32 but q is f16 (f16 q, k, v beside f32 take the tensor-core backward)');
    expect(() => record((pass) => encodeAttentionBackward(kernels, pass, { ...t, dq: createTensor(gpu.device, [1, 20, 2, 64], 'f16') }, s))).toThrow('dq is f16 but o is f32');
    for (const x of [q, k, v, o, lse, ...Object.values(t)]) x.buffer.destroy();
  });
});

describe('tensor-core attention checks against float64', () => {
  it('passes on this device (tensor cores where it has them, else the SIMT kernels in f16 and f32)', async () => {
    if (!gpu.info.f16) return expect(gpu.info.features).not.toContain('shader-f16');
    // Three of the cases here (lavapipe runs the SIMT kernels, seconds each); all of them on the benchmark machine.
    const all = attentionMmaChecks();
    const few = [1, 3, 5]; // seeds: the first, third and fifth case; f16 q, k, v beside f32 only on the tensor cores
    const checks = kernels.gpu.info.mmaF16 ? all : all.filter(([c, storage]) => few.includes(c.seed) && storage !== 'f16qkv');
    expect(checks.length).toBe(kernels.gpu.info.mmaF16 ? all.length : 6);
    for (const [c, dtype] of checks) {
      const r = await checkAttentionMma(kernels, c, dtype);
      expect(r.tensorCores).toBe(kernels.gpu.info.mmaF16);
      expect(r.backwardTensorCores).toBe(kernels.gpu.info.mmaF16 && c.headDim % 32 === 0);
      expect(r.ok, `${JSON.stringify(c)} ${dtype}: ${JSON.stringify(r)}`).toBe(true);
    }
  }, 120_000);

  it("the growing keys move the forward's reference max (the rescale of o) in most of their tiles", () => {
    // The forward's rule in float64 on the case's f16 inputs: a row's m is its first tile's max and
    // moves to a tile's max past m + 8 (base 2). Tiles of 64 keys from key 0 (causal, no window).
    const c = attentionMmaCases().find((x) => x.growKeys)!;
    const { q, k } = attentionMmaInputs(c, 'f16');
    const D = c.headDim;
    let moves = 0;
    let tiles = 0;
    for (let h = 0; h < c.heads; h++) {
      const kvh = Math.floor(h / (c.heads / c.kvHeads));
      for (let i = 0; i < c.tq; i++) {
        let m = -Infinity;
        for (let j0 = 0; j0 <= i; j0 += 64) {
          let mx = -Infinity;
          for (let j = j0; j < Math.min(j0 + 64, i + 1); j++) {
            let s = 0;
            for (let d = 0; d < D; d++) s += q[(i * c.heads + h) * D + d] * k[(j * c.kvHeads + kvh) * D + d];
            mx = Math.max(mx, s * c.scale! * Math.LOG2E);
          }
          if (j0 > 0) tiles++;
          if (mx > m + 8) {
            if (m > -Infinity) moves++;
            m = mx;
          }
        }
      }
    }
    console.log(`growing keys: m moves in ${moves} of ${tiles} tiles after the first`);
    expect(moves / tiles).toBeGreaterThan(0.3);
  });
});

describe("the benchmark machine's record of the tensor-core attention checks (tests/fixtures/attention-mma)", () => {
  // Made on the H200 with `npm run bench -- --only attn --checks-only --json B.json` and `node tools/bench/attention-mma-fixture.mjs B.json`.
  const record = JSON.parse(readFileSync(join(import.meta.dirname, 'fixtures/attention-mma/checks.json'), 'utf8')) as {
    digest: string;
    gpu: { vendor: string };
    checks: AttentionMmaCheck[];
  };

  it('is for the shaders this tree generates, on a GPU with tensor cores', () => {
    expect(record.digest).toBe(attentionMmaDigest());
    expect(record.gpu.vendor).toBe('nvidia');
  });

  it('covers every check (every case in both storage types, the growing keys in f16), on the tensor cores', () => {
    const want = attentionMmaChecks().map(([c, dtype]) => `${JSON.stringify(c)} ${dtype}`);
    expect(record.checks.map((c) => `${JSON.stringify(c.case)} ${c.dtype}`)).toEqual(want);
    for (const c of record.checks) {
      expect(c.tensorCores).toBe(true);
      expect(c.backwardTensorCores).toBe(c.case.headDim % 32 === 0);
    }
  });

  it('is within the tolerances', () => {
    for (const c of record.checks) expect(withinAttentionTolerance(c), JSON.stringify(c)).toBe(true);
  });
});
