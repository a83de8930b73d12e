// The GGUF quantizers on the GPU (src/engine/kquant-gpu.ts, shaders/kquant.wgsl) against the CPU
// quantizers (src/io/quants/, which give ggml's bytes): the contract is that at least 99.9% of
// blocks are byte-identical and any block that differs reconstructs with an RMSE at most 1.01x the
// CPU block's; on lavapipe every block of every case here is identical (the shader rounds division
// and sqrt correctly on the integer significands and keeps products out of FMAs, so it does not
// depend on the GPU's loose float ops). Blocks with non-finite values or groups too tiny or too
// large for that (see the shader's header) are redone on the CPU: NaN/Inf come out as quantize()
// makes them. Then whole GGUF exports through the GPU quantizer, byte for byte the CPU's.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../src/engine/gpu.ts';
import { Kernels } from '../src/engine/kernels.ts';
import { GPU_QUANT_TYPES, KQuantGpu, gpuQuantizer, isSoftwareGpu } from '../src/engine/kquant-gpu.ts';
import { planExport } from '../src/io/export-job.ts';
import { fileBytes } from '../src/io/export-files.ts';
import { collectBytes } from '../src/io/gguf.ts';
import { openGguf } from '../src/io/gguf-read.ts';
import { createNodeQuantPool } from '../src/io/quant-pool-node.ts';
import type { QuantPool } from '../src/io/quant-pool.ts';
import { GGMLType, dequantize, ggmlTypeName, quantize, type GGMLTypeId } from '../src/io/quants/index.ts';
import { blocks32Cases, identityCases, irwinHall } from './fixtures/quants-identity-cases.ts';
import { firstDiff } from './fixtures/gguf/helpers.ts';
import { randomAdapter, wideExportModel } from './export-helpers.ts';
import { testGpu, withDefaultLimitsKernels } from './gpu/device.ts';

let gpu: Gpu;
let kernels: Kernels;
beforeAll(async () => {
  gpu = await testGpu();
  kernels = new Kernels(gpu);
});

const SIZES: Record<number, { block: number; bytes: number; group: number }> = {
  [GGMLType.Q4_K]: { block: 256, bytes: 144, group: 32 },
  [GGMLType.Q5_K]: { block: 256, bytes: 176, group: 32 },
  [GGMLType.Q6_K]: { block: 256, bytes: 210, group: 16 },
  [GGMLType.Q8_0]: { block: 32, bytes: 34, group: 32 },
};

/** Root mean square of (dequantized block - x) over one block. */
function blockRmse(type: number, bytes: Uint8Array, x: Float32Array): number {
  const y = dequantize(type, bytes);
  let s = 0;
  for (let i = 0; i < x.length; i++) s += (y[i] - x[i]) ** 2;
  return Math.sqrt(s / x.length);
}

/** The shader's rule for blocks it leaves to the CPU: a non-finite or subnormal value, or a group
 * whose largest |x| is not 0 and under 2^-20 or at least 2^16. */
function needsCpu(x: Float32Array, group: number): boolean {
  for (let g = 0; g < x.length; g += group) {
    let amax = 0;
    for (let i = g; i < g + group; i++) {
      if (x[i] !== 0 && Math.abs(x[i]) < 2 ** -126) return true;
      amax = Math.max(amax, Number.isNaN(x[i]) ? Infinity : Math.abs(x[i]));
    }
    if ((amax !== 0 && amax < 2 ** -20) || amax >= 2 ** 16) return true;
  }
  return false;
}

/** Gaussian super-blocks with a few odd values among normal ones: a subnormal in every third (the
 * CPU redoes those), tiny normal values and exact zeros in the others (the GPU keeps those). */
function sprinkled(): Float32Array {
  const x = irwinHall(256 * 64, 23, 0.02);
  for (let b = 0; b < 64; b++) {
    const at = 256 * b + ((b * 37) % 256);
    if (b % 3 === 0) x[at] = b % 2 ? 1e-40 : -3e-39;
    else {
      x[at] = [1e-30, -1e-25, 2e-38, 0][b % 4];
      x[at + 1] = 0;
    }
  }
  return x;
}

/** Seeded inputs: the identity test's seven cases (Gaussian, outliers, zero and constant blocks,
 * tiny, huge, mixed, ±Inf/NaN; 64 super-blocks each), odd values among Gaussian ones, and 1024 more
 * Gaussian super-blocks. */
const CASES = [...identityCases(), { name: 'sprinkled', values: sprinkled() }, { name: 'gaussian-1024', values: irwinHall(256 * 1024, 21, 0.02) }];

describe('GPU k-quants give the CPU quantizer\'s bytes', () => {
  const measured: string[] = [];
  afterAll(() => console.log(`kquant-gpu on ${gpu.info.description}:\n  ${measured.join('\n  ')}`));

  // Measured here (lavapipe, 2 cores): 1536 of 1536 super-blocks identical for every k-quant, 12288
  // of 12288 Q8_0 blocks; Gaussian throughput 2.3-3.7 M weights/s (Q4_K), 2.6-5.1 (Q5_K), 9-18
  // (Q6_K), 25-35 (Q8_0) over several runs — the CPU quantizers under vitest: 1.7, 2.3, 3.4 and 22
  // on one core. (Division and sqrt are correctly rounded on lavapipe itself, and it fuses nothing:
  // with the GPU's own division all blocks are identical too, at about twice the speed.)
  for (const type of GPU_QUANT_TYPES) {
    const name = ggmlTypeName(type);
    it(`${name}: ≥ 99.9% of blocks byte-identical (lavapipe: all of them), a differing block within 1.01x the CPU's RMSE; the flagged blocks by the CPU`, async () => {
      const { block, bytes: size, group } = SIZES[type];
      const q = new KQuantGpu(kernels);
      let total = 0;
      let same = 0;
      try {
        await q.quantize(type, CASES[0].values.subarray(0, 512)); // compiles the shaders
        for (const c of CASES) {
          const cpuBefore = q.stats.cpuBlocks;
          const t0 = performance.now();
          const got = await q.quantize(type, c.values);
          const seconds = (performance.now() - t0) / 1000;
          const want = quantize(type, c.values);
          expect(got.length).toBe(want.length);
          let flagged = 0;
          for (let b = 0; b < want.length / size; b++) {
            const x = c.values.subarray(b * block, (b + 1) * block);
            if (needsCpu(x, group)) flagged++;
            const g = got.subarray(b * size, (b + 1) * size);
            const w = want.subarray(b * size, (b + 1) * size);
            total++;
            if (firstDiff(g, w) < 0) {
              same++;
              continue;
            }
            const rg = blockRmse(type, g, x);
            const rw = blockRmse(type, w, x);
            expect(rg, `${c.name} block ${b}: RMSE ${rg} against the CPU's ${rw}`).toBeLessThanOrEqual(rw * 1.01);
          }
          // Q6_K and Q8_0 redo two blocks per flag (a pair shares the shader's words).
          const redone = q.stats.cpuBlocks - cpuBefore;
          if (type === GGMLType.Q4_K || type === GGMLType.Q5_K) expect(redone, c.name).toBe(flagged);
          else expect(redone >= flagged && redone <= 2 * flagged, `${c.name}: ${redone} redone, ${flagged} flagged`).toBe(true);
          if (c.name.startsWith('gaussian') || c.name === 'outliers' || c.name === 'mixed') expect(redone, c.name).toBe(0);
          if (c.name === 'special' || c.name === 'tiny' || c.name === 'large' || c.name === 'sprinkled') expect(redone, c.name).toBeGreaterThan(0);
          if (c.name === 'sprinkled' && block === 256) expect(flagged).toBe(22); // the subnormals' super-blocks
          if (c.name === 'gaussian-1024') measured.push(`${name}: ${(c.values.length / seconds / 1e6).toFixed(2)} M weights/s (Gaussian, ${c.values.length} values)`);
        }
      } finally {
        q.destroy();
      }
      measured.push(`${name}: ${same} of ${total} blocks identical`);
      expect(same / total).toBeGreaterThanOrEqual(0.999);
    });
  }

  it('chunks of whole units (odd Q6_K pairs and Q8_0 pairs at the ends), overlapping calls, shared memory: the same bytes', async () => {
    const q = new KQuantGpu(kernels, { chunkElements: 2048 });
    try {
      const x = irwinHall(256 * 13, 31, 0.02); // 13 super-blocks: chunks of 8 and 5
      const odd = blocks32Cases()[0].values; // 37 Q8_0 blocks
      const shared = new Float32Array(new SharedArrayBuffer(x.byteLength));
      shared.set(x);
      const jobs: [GGMLTypeId, Float32Array][] = [
        [GGMLType.Q4_K, x],
        [GGMLType.Q6_K, x],
        [GGMLType.Q5_K, x.subarray(256, 256 * 4)],
        [GGMLType.Q6_K, x.subarray(0, 256)],
        [GGMLType.Q8_0, odd],
        [GGMLType.Q8_0, x.subarray(32, 32 * 4)],
        [GGMLType.Q6_K, shared],
      ];
      const got = await Promise.all(jobs.map(([t, v]) => q.quantize(t, v)));
      jobs.forEach(([t, v], i) => expect(firstDiff(got[i], quantize(t, v)), `${ggmlTypeName(t)} job ${i}`).toBe(-1));
      // Lengths that are not whole blocks fail as quantize() fails.
      await expect(q.quantize(GGMLType.Q4_K, x.subarray(0, 300))).rejects.toThrow(/not a whole number of 256-element blocks/);
    } finally {
      q.destroy();
    }
  });

  it("on a device with WebGPU's default limits: no validation error, the same bytes", async () => {
    await withDefaultLimitsKernels(gpu, async (k) => {
      const q = new KQuantGpu(k);
      const x = CASES[1].values.subarray(0, 256 * 6);
      for (const t of GPU_QUANT_TYPES) expect(firstDiff(await q.quantize(t, x), quantize(t, x)), ggmlTypeName(t)).toBe(-1);
      q.destroy();
    });
  });

  it('gpuQuantizer: Q6_K (not byte-identical on every NVIDIA block) goes to the fallback by default', async () => {
    const seen: string[] = [];
    const quantizer = gpuQuantizer(kernels, { minElements: 1024, fallback: (t, w) => (seen.push(`${ggmlTypeName(t)}:${w.length}`), quantize(t, w)) });
    try {
      const x = irwinHall(2048, 42, 0.02);
      for (const t of [GGMLType.Q4_K, GGMLType.Q5_K, GGMLType.Q6_K, GGMLType.Q8_0] as GGMLTypeId[]) {
        expect(firstDiff(await quantizer(t, x), quantize(t, x)), ggmlTypeName(t)).toBe(-1);
      }
      expect(seen).toEqual(['Q6_K:2048']);
    } finally {
      quantizer.destroy();
    }
  });

  it('gpuQuantizer: other types and small tensors go to the fallback; lavapipe counts as a software GPU', async () => {
    const seen: string[] = [];
    const quantizer = gpuQuantizer(kernels, { minElements: 1024, types: GPU_QUANT_TYPES, fallback: (t, w) => (seen.push(`${ggmlTypeName(t)}:${w.length}`), quantize(t, w)) });
    try {
      const x = irwinHall(2048, 41, 0.02);
      for (const t of [GGMLType.Q4_K, GGMLType.Q3_K, GGMLType.F16, GGMLType.F32, GGMLType.Q8_0] as GGMLTypeId[]) {
        expect(firstDiff(await quantizer(t, x), quantize(t, x)), ggmlTypeName(t)).toBe(-1);
      }
      expect(firstDiff(await quantizer(GGMLType.Q6_K, x.subarray(0, 512)), quantize(GGMLType.Q6_K, x.subarray(0, 512)))).toBe(-1);
      expect(seen).toEqual(['Q3_K:2048', 'F16:2048', 'F32:2048', 'Q6_K:512']);
      expect(quantizer.stats).toEqual({ gpuElements: 4096, cpuBlocks: 0, fallbackElements: 2048 * 3 + 512 });
    } finally {
      quantizer.destroy();
    }
    expect(isSoftwareGpu(gpu.info)).toBe(/llvmpipe|swiftshader/i.test(gpu.info.description) || gpu.info.architecture === 'software');
    expect(isSoftwareGpu({ vendor: 'google', architecture: 'swiftshader', description: '' })).toBe(true);
    expect(isSoftwareGpu({ vendor: 'nvidia', architecture: 'hopper', description: 'NVIDIA H200' })).toBe(false);
  });
});

describe('GGUF export through the GPU quantizer', () => {
  const model = wideExportModel(); // rows of 256 and 512: every k-quant, no fallback types
  const adapter = randomAdapter(model.arch, 88);
  const params = model.tensors.reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
  let pool: QuantPool;
  beforeAll(() => {
    pool = createNodeQuantPool({ size: 1 });
  });
  afterAll(() => pool?.close());

  for (const type of ['q4_k_m', 'q5_k_m', 'q8_0'] as const) {
    it(`${type}: the file of the CPU path byte for byte; re-read, the same tensors, types and shapes`, async () => {
      const quantizer = gpuQuantizer(kernels, { minElements: 0, types: GPU_QUANT_TYPES });
      try {
        const cpu = planExport(model, adapter, { kind: 'gguf', ggufType: type, modelfile: false });
        const viaGpu = planExport(model, adapter, { kind: 'gguf', ggufType: type, modelfile: false }, { quantizer });
        const a = await fileBytes(cpu.files[0]);
        const b = await fileBytes(viaGpu.files[0]);
        expect(b.length).toBe(viaGpu.files[0].size);
        const ga = await openGguf(a);
        const gb = await openGguf(b);
        expect(gb.tensors.map((t) => [t.name, ggmlTypeName(t.type), t.ne])).toEqual(ga.tensors.map((t) => [t.name, ggmlTypeName(t.type), t.ne]));
        const gpuTypes = new Set(gb.tensors.filter((t) => (GPU_QUANT_TYPES as number[]).includes(t.type)).map((t) => ggmlTypeName(t.type)));
        expect([...gpuTypes].sort()).toEqual({ q4_k_m: ['Q4_K', 'Q6_K'], q5_k_m: ['Q5_K', 'Q6_K'], q8_0: ['Q8_0'] }[type]);
        expect(firstDiff(a, b)).toBe(-1);
        expect(quantizer.stats.gpuElements).toBeGreaterThan(params * 0.9);
        expect(quantizer.stats.cpuBlocks).toBe(0);
      } finally {
        quantizer.destroy();
      }
    });
  }

  it('with the worker pool merging (and quantizing the F32 norms), tensors read in row chunks: the pool path\'s file', async () => {
    const quantizer = gpuQuantizer(kernels, { minElements: 0, types: GPU_QUANT_TYPES, fallback: (t, w) => pool.quantize(t, w) });
    try {
      const poolOnly = planExport(model, adapter, { kind: 'gguf', ggufType: 'q4_k_m', modelfile: false }, { pool, chunkElements: 256 * 40 });
      const both = planExport(model, adapter, { kind: 'gguf', ggufType: 'q4_k_m', modelfile: false }, { pool, quantizer, chunkElements: 256 * 40 });
      const a = await collectBytes(poolOnly.files[0].chunks());
      const b = await collectBytes(both.files[0].chunks());
      expect(firstDiff(a, b)).toBe(-1);
      expect(quantizer.stats.fallbackElements).toBeGreaterThan(0); // the norms
      expect(quantizer.stats.gpuElements).toBeGreaterThan(params * 0.9);
    } finally {
      quantizer.destroy();
    }
  });
});
