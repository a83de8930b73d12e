// The LoRA kernels at the training shapes (tokens M = --seq, batch 1, f32 activations as training
// runs them, r = 16, no dropout): for each distinct (in, out) of a model's seven linears, the
// forward (encodeLora: u = x Aᵀ, y += s u Bᵀ) and the backward (encodeLoraBackward: du, dB, dA,
// dx, with a scratch as the training backward passes one), GPU time and effective GB/s over the
// activation bytes the products must move (x, y, dy, dx, u, du; not the weights or the partial
// sums); and per model, LoRA's GPU time in one checkpointed training step (every linear's forward
// twice but the last layer's, its backward once).
// The kernels before issue 10 took 418 ms (1B) / 1403 ms (8B) of LoRA per training step, against
// 43 / 188 ms now (bench/h200-2026-11-29-lora.json).
// Where the device has f16 subgroup matrices, also u = x · Aᵀ the ways training takes it, per
// distinct in: the SIMT down alone (lora.wgsl), the f16 rows of x alone (what the base's GEMM makes
// anyway), and those rows with one and with three adapters' u's (encodeMmaRows: the tensor-core
// down); the down's own cost is the difference to the rows alone.
import { parseModelConfig } from '../../src/engine/arch.ts';
import type { Gpu } from '../../src/engine/gpu.ts';
import type { Kernels } from '../../src/engine/kernels.ts';
import { encodeLora, encodeLoraU, type LoraWeights } from '../../src/engine/lora.ts';
import { encodeLoraBackward, loraBackwardScratchBytes, type LoraGrads } from '../../src/engine/lora-backward.ts';
import { encodeMmaRows } from '../../src/engine/matmul-mma.ts';
import { createTensor } from '../../src/engine/tensor.ts';
import { randomTensor } from './engine.ts';
import { LOAD_CONFIGS } from './load.ts';
import { rotationCopies, timePass } from './timing.ts';

const R = 16;

export interface LoraBenchResult {
  op: 'lora';
  shape: string;
  /** [M, in, out, r]. */
  dims: number[];
  /** Linears of one layer with this (in, out). */
  count: number;
  forwardMs: number;
  backwardMs: number;
  forwardGbps: number;
  backwardGbps: number;
}

/** u = x · Aᵀ at [M, in] (f32 x, r 16), GPU ms a dispatch group (LoraBenchReport.downs). */
export interface LoraDownResult {
  shape: string;
  /** [M, in, r]. */
  dims: number[];
  simtMs: number;
  rowsMs: number;
  rowsAndOneMs: number;
  rowsAndThreeMs: number;
}

export interface LoraBenchReport {
  op: 'lora-bench';
  results: LoraBenchResult[];
  downs: LoraDownResult[];
  /** Per model: LoRA's GPU ms in one training step at M tokens. */
  stepMs: { shape: string; ms: number }[];
}

export async function benchLora(gpu: Gpu, kernels: Kernels, shapes: string[], m: number, repeats: number): Promise<LoraBenchReport> {
  const report: LoraBenchReport = { op: 'lora-bench', results: [], downs: [], stepMs: [] };
  for (const shape of shapes) {
    const arch = parseModelConfig(LOAD_CONFIGS[shape]);
    const pairs = new Map<string, { k: number; n: number; count: number }>();
    for (const l of arch.linears) {
      const key = `${l.in}x${l.out}`;
      const p = pairs.get(key) ?? { k: l.in, n: l.out, count: 0 };
      p.count++;
      pairs.set(key, p);
    }
    let step = 0;
    for (const { k, n, count } of pairs.values()) {
      const r = await benchPair(gpu, kernels, shape, m, k, n, count, repeats);
      report.results.push(r);
      step += count * ((2 * arch.layers - 1) * r.forwardMs + arch.layers * r.backwardMs);
      console.log(
        `lora ${shape} [M ${m}, ${k} -> ${n}, r ${R}] x${count}: forward ${r.forwardMs.toFixed(3)} ms (${r.forwardGbps.toPrecision(3)} GB/s), ` +
          `backward ${r.backwardMs.toFixed(3)} ms (${r.backwardGbps.toPrecision(3)} GB/s)`,
      );
    }
    report.stepMs.push({ shape, ms: step });
    console.log(`lora ${shape}: ${step.toFixed(1)} ms of LoRA kernels per training step (${arch.layers} layers, M ${m}, checkpointed)`);
    if (!gpu.info.mmaF16) continue;
    for (const k of new Set(arch.linears.map((l) => l.in))) {
      const d = await benchDown(gpu, kernels, shape, m, k, repeats);
      report.downs.push(d);
      console.log(
        `lora ${shape} down [M ${m}, ${k}, r ${R}]: SIMT ${d.simtMs.toFixed(3)} ms; f16 rows ${d.rowsMs.toFixed(3)}, ` +
          `with one adapter's u ${d.rowsAndOneMs.toFixed(3)}, with three ${d.rowsAndThreeMs.toFixed(3)}`,
      );
    }
  }
  return report;
}

async function benchDown(gpu: Gpu, kernels: Kernels, shape: string, m: number, k: number, repeats: number): Promise<LoraDownResult> {
  const dev = gpu.device;
  let seed = 100;
  const rand = (s: number[], scale = 1) => randomTensor(kernels, s, 'f32', scale, seed++, 'bench.lora.down');
  const adapters = Array.from({ length: 3 }, () => ({ a: rand([R, k], 0.05), b: rand([R, R], 0.05), scale: 1 }) as LoraWeights);
  const copies = rotationCopies(4 * m * k);
  const xs = Array.from({ length: copies }, () => rand([m, k]));
  const us = adapters.map(() => createTensor(dev, [m, R], 'f32'));
  const downs = (n: number) => adapters.slice(0, n).map((l, g) => ({ d: l.a, u: us[g], scale: 1 }));
  const time = (encode: (pass: GPUComputePassEncoder, x: (typeof xs)[number]) => void) => timePass(gpu, repeats, (pass, i) => encode(pass, xs[i % copies]));
  const simt = await time((pass, x) => encodeLoraU(kernels, pass, x, adapters[0], us[0]));
  const rows = await time((pass, x) => encodeMmaRows(kernels, pass, x, m, k));
  const one = await time((pass, x) => encodeMmaRows(kernels, pass, x, m, k, downs(1)));
  const three = await time((pass, x) => encodeMmaRows(kernels, pass, x, m, k, downs(3)));
  for (const t of [...adapters.flatMap((l) => [l.a, l.b]), ...xs, ...us]) t.buffer.destroy();
  return { shape, dims: [m, k, R], simtMs: simt * 1e3, rowsMs: rows * 1e3, rowsAndOneMs: one * 1e3, rowsAndThreeMs: three * 1e3 };
}

async function benchPair(gpu: Gpu, kernels: Kernels, shape: string, m: number, k: number, n: number, count: number, repeats: number): Promise<LoraBenchResult> {
  const dev = gpu.device;
  let seed = 1;
  const rand = (s: number[], scale = 1) => randomTensor(kernels, s, 'f32', scale, seed++, 'bench.lora');
  const l: LoraWeights = { a: rand([R, k], 0.05), b: rand([n, R], 0.05), scale: 1 };
  const grads: LoraGrads = { a: createTensor(dev, [R, k], 'f32'), b: createTensor(dev, [n, R], 'f32') };
  const copies = rotationCopies(4 * m * (2 * k + 2 * n));
  const sets = Array.from({ length: copies }, () => ({
    x: rand([m, k]),
    y: rand([m, n]),
    dy: rand([m, n]),
    dx: rand([m, k]),
    u: createTensor(dev, [m, R], 'f32'),
    du: createTensor(dev, [m, R], 'f32'),
  }));
  const scratch = dev.createBuffer({ size: Math.max(4, loraBackwardScratchBytes({ m, k, n, r: R })), usage: GPUBufferUsage.STORAGE, label: 'bench.lora.scratch' });
  const bytesF = 4 * m * (k + 2 * n + 2 * R);
  const bytesB = 4 * m * (2 * n + k + 2 * k + R + 3 * R);
  const forward = await timePass(gpu, repeats, (pass, i) => {
    const t = sets[i % copies];
    encodeLora(kernels, pass, t.x, l, t.u, t.y);
  });
  const backward = await timePass(gpu, repeats, (pass, i) => {
    const t = sets[i % copies];
    encodeLoraBackward(kernels, pass, l, grads, { x: t.x, u: t.u, dy: t.dy, du: t.du, dx: t.dx, scratch });
  });
  for (const t of [l.a, l.b, grads.a, grads.b, ...sets.flatMap((x) => Object.values(x))]) t.buffer.destroy();
  scratch.destroy();
  return {
    op: 'lora',
    shape,
    dims: [m, k, n, R],
    count,
    forwardMs: forward * 1e3,
    backwardMs: backward * 1e3,
    forwardGbps: bytesF / forward / 1e9,
    backwardGbps: bytesB / backward / 1e9,
  };
}
