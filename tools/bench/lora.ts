// The LoRA kernels at the training shapes (tokens M = --seq, batch 1, f32 activations as training
// runs them, r = 16, no dropout): for each distinct (in, out) of a model's seven linears, the
// forward (encodeLora: u = x Aᵀ, y += s u Bᵀ) and the backward (encodeLoraBackward: du, dB, dA,
// dx, with a scratch as the training backward passes one), GPU time and effective GB/s over the
// activation bytes the products must move (x, y, dy, dx, u, du; not the weights or the partial
// sums). Beside them the kernels before issue 10 (v0: tools/bench/lora-v0.wgsl and
// lora-backward-v0.wgsl, recorded as the old wrappers did), after a check that both give the same
// results on the same inputs; and per model, LoRA's GPU time in one checkpointed training step
// (every linear's forward twice but the last layer's, its backward once).
import { parseModelConfig } from '../../src/engine/arch.ts';
import type { Gpu } from '../../src/engine/gpu.ts';
import { withResidualType, type Kernels } from '../../src/engine/kernels.ts';
import { encodeLora, hasDropout, type LoraWeights } from '../../src/engine/lora.ts';
import { encodeLoraBackward, loraBackwardScratchBytes, type LoraGrads, type LoraBackwardTensors } from '../../src/engine/lora-backward.ts';
import { dropoutParams } from '../../src/engine/lora-dropout.ts';
import { createTensor, readTensor, type Tensor } from '../../src/engine/tensor.ts';
import dropoutSource from '../../shaders/lora-dropout.wgsl?raw';
import v0Source from './lora-v0.wgsl?raw';
import v0BackwardSource from './lora-backward-v0.wgsl?raw';
import { randomTensor } from './engine.ts';
import { LOAD_CONFIGS } from './load.ts';
import { rotationCopies, timePass } from './timing.ts';

const R = 16;

export interface LoraBenchResult {
  op: 'lora';
  shape: string;
  /** v1: the kernels of this tree; v0: those before issue 10. */
  variant: 'v1' | 'v0';
  /** [M, in, out, r]. */
  dims: number[];
  /** Linears of one layer with this (in, out). */
  count: number;
  forwardMs: number;
  backwardMs: number;
  forwardGbps: number;
  backwardGbps: number;
}

export interface LoraBenchReport {
  op: 'lora-bench';
  results: LoraBenchResult[];
  /** Per model and variant: LoRA's GPU ms in one training step at M tokens. */
  stepMs: { shape: string; variant: 'v1' | 'v0'; ms: number }[];
  /** Per shape, the largest relative difference (max |v1 - v0| / max |v0|) of u, y, du, dA, dB, dx. */
  checks: { shape: string; dims: number[]; diff: Record<string, number> }[];
}

export async function benchLora(gpu: Gpu, kernels: Kernels, shapes: string[], m: number, repeats: number): Promise<LoraBenchReport> {
  const report: LoraBenchReport = { op: 'lora-bench', results: [], stepMs: [], checks: [] };
  for (const shape of shapes) {
    const arch = parseModelConfig(LOAD_CONFIGS[shape]);
    const pairs = new Map<string, { k: number; n: number; count: number }>();
    for (const l of arch.linears) {
      const key = `${l.in}x${l.out}`;
      const p = pairs.get(key) ?? { k: l.in, n: l.out, count: 0 };
      p.count++;
      pairs.set(key, p);
    }
    const step = { v1: 0, v0: 0 };
    for (const { k, n, count } of pairs.values()) {
      const { results, diff } = await benchPair(gpu, kernels, shape, m, k, n, count, repeats);
      report.checks.push({ shape, dims: [m, k, n, R], diff });
      for (const r of results) {
        report.results.push(r);
        step[r.variant] += count * ((2 * arch.layers - 1) * r.forwardMs + arch.layers * r.backwardMs);
        console.log(
          `lora ${shape} ${r.variant} [M ${m}, ${k} -> ${n}, r ${R}] x${count}: forward ${r.forwardMs.toFixed(3)} ms (${r.forwardGbps.toPrecision(3)} GB/s), ` +
            `backward ${r.backwardMs.toFixed(3)} ms (${r.backwardGbps.toPrecision(3)} GB/s)`,
        );
      }
      console.log(`lora ${shape} [${k} -> ${n}] v1 against v0: ${Object.entries(diff).map(([t, d]) => `${t} ${d.toExponential(1)}`).join(', ')}`);
    }
    for (const variant of ['v1', 'v0'] as const) {
      report.stepMs.push({ shape, variant, ms: step[variant] });
      console.log(`lora ${shape} ${variant}: ${step[variant].toFixed(1)} ms of LoRA kernels per training step (${arch.layers} layers, M ${m}, checkpointed)`);
    }
  }
  return report;
}

async function benchPair(gpu: Gpu, kernels: Kernels, shape: string, m: number, k: number, n: number, count: number, repeats: number) {
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
  const v0 = v0Placeholders(dev);
  const bwd = (s: (typeof sets)[number]): LoraBackwardTensors => ({ x: s.x, u: s.u, dy: s.dy, du: s.du, dx: s.dx });

  // Same inputs through both: the first set for v1, copies of its y and dx (updated in place) for v0.
  const s = sets[0];
  const clone = (t: Tensor): Tensor => {
    const c = createTensor(dev, t.shape, t.dtype, 'bench.lora');
    const enc = dev.createCommandEncoder();
    enc.copyBufferToBuffer(t.buffer, 0, c.buffer, 0, t.buffer.size);
    dev.queue.submit([enc.finish()]);
    return c;
  };
  const other = { y: clone(s.y), dx: clone(s.dx) };
  const u0 = createTensor(dev, [m, R], 'f32');
  const du0 = createTensor(dev, [m, R], 'f32');
  const g0: LoraGrads = { a: createTensor(dev, [R, k], 'f32'), b: createTensor(dev, [n, R], 'f32') };
  const run = (f: (pass: GPUComputePassEncoder) => void) => {
    const enc = dev.createCommandEncoder();
    const pass = enc.beginComputePass();
    f(pass);
    pass.end();
    dev.queue.submit([enc.finish()]);
  };
  run((pass) => encodeLora(kernels, pass, s.x, l, s.u, s.y));
  run((pass) => encodeLoraV0(kernels, pass, s.x, l, u0, other.y));
  run((pass) => encodeLoraBackward(kernels, pass, l, grads, { ...bwd(s), scratch }));
  run((pass) => encodeLoraBackwardV0(kernels, v0, pass, l, g0, { x: s.x, u: s.u, dy: s.dy, du: du0, dx: other.dx }));
  const diff: Record<string, number> = {};
  for (const [name, a, b] of [['u', s.u, u0], ['y', s.y, other.y], ['du', s.du, du0], ['dA', grads.a, g0.a], ['dB', grads.b, g0.b], ['dx', s.dx, other.dx]] as [string, Tensor, Tensor][]) {
    diff[name] = relDiff(await readTensor(dev, a), await readTensor(dev, b));
  }
  for (const t of [other.y, other.dx, u0, du0, g0.a, g0.b]) t.buffer.destroy();

  const bytesF = 4 * m * (k + 2 * n + 2 * R);
  const bytesB = 4 * m * (2 * n + k + 2 * k + R + 3 * R);
  const results: LoraBenchResult[] = [];
  for (const variant of ['v1', 'v0'] as const) {
    const forward = await timePass(gpu, repeats, (pass, i) => {
      const t = sets[i % copies];
      if (variant === 'v1') encodeLora(kernels, pass, t.x, l, t.u, t.y);
      else encodeLoraV0(kernels, pass, t.x, l, t.u, t.y);
    });
    const backward = await timePass(gpu, repeats, (pass, i) => {
      const t = sets[i % copies];
      if (variant === 'v1') encodeLoraBackward(kernels, pass, l, grads, { ...bwd(t), scratch });
      else encodeLoraBackwardV0(kernels, v0, pass, l, grads, bwd(t));
    });
    results.push({
      op: 'lora',
      shape,
      variant,
      dims: [m, k, n, R],
      count,
      forwardMs: forward * 1e3,
      backwardMs: backward * 1e3,
      forwardGbps: bytesF / forward / 1e9,
      backwardGbps: bytesB / backward / 1e9,
    });
  }
  for (const t of [l.a, l.b, grads.a, grads.b, ...sets.flatMap((x) => Object.values(x))]) t.buffer.destroy();
  scratch.destroy();
  return { results, diff };
}

function relDiff(a: Float32Array, b: Float32Array): number {
  let d = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return d / Math.max(scale, Number.MIN_VALUE);
}

// ---- the v0 kernels, recorded as src/engine/lora.ts and lora-backward.ts did before issue 10

const V0 = `${dropoutSource}\n${v0Source}`;
const V0_BACKWARD = `${dropoutSource}\n${v0BackwardSource}`;

function encodeLoraV0(kernels: Kernels, pass: GPUComputePassEncoder, x: Tensor, lora: LoraWeights, u: Tensor, y: Tensor): void {
  const [r, k] = lora.a.shape;
  const n = lora.b.shape[0];
  const m = x.shape[0];
  const spec = withResidualType('lora_v0', V0, x.dtype, y.dtype);
  const buffers = [x.buffer, lora.a.buffer, lora.b.buffer, u.buffer, y.buffer];
  const params = { m, k, n, r, scale: lora.scale, ...dropoutParams(lora.dropout) };
  kernels.dispatch(pass, kernels.get({ ...spec, dtype: x.dtype, constants: { UP: false, DROPOUT: hasDropout(lora) } }), buffers, params, [Math.ceil(r / 16), Math.ceil(m / 8)]);
  kernels.dispatch(pass, kernels.get({ ...spec, dtype: x.dtype, constants: { UP: true } }), buffers, params, [Math.ceil(n / 64), Math.ceil(m / 64)]);
}

function v0Placeholders(device: GPUDevice): { ro: GPUBuffer; rw: GPUBuffer } {
  const make = (label: string) => device.createBuffer({ size: 16, usage: GPUBufferUsage.STORAGE, label });
  return { ro: make('bench.lora_v0.unused-ro'), rw: make('bench.lora_v0.unused-rw') };
}

function encodeLoraBackwardV0(kernels: Kernels, ph: { ro: GPUBuffer; rw: GPUBuffer }, pass: GPUComputePassEncoder, lora: LoraWeights, grads: LoraGrads, t: LoraBackwardTensors): void {
  const [r, k] = lora.a.shape;
  const n = lora.b.shape[0];
  const m = t.x.shape[0];
  const dxType = t.dx?.dtype ?? t.x.dtype;
  const spec = withResidualType('lora_backward_v0', V0_BACKWARD, t.x.dtype, dxType);
  const named = { name: `${spec.name}(D=${t.dy.dtype})`, source: `alias D = ${t.dy.dtype};\n${spec.source}` };
  const drop = hasDropout(lora);
  const get = (mode: number, outerX = false, dropout = false) => kernels.get({ ...named, dtype: t.x.dtype, constants: { MODE: mode, OUTER_X: outerX, DROPOUT: dropout } });
  const { ro, rw } = ph;
  const base = { m, r, w_row: 0, w_red: 0, out_t: 0, accumulate: 0, scale: lora.scale, ...dropoutParams(lora.dropout) };
  kernels.dispatch(pass, get(2), [ro, t.dy.buffer, t.u.buffer, ro, grads.b.buffer, rw], { ...base, len: n, accumulate: 1 }, [Math.ceil(n / 64), Math.ceil(r / 16)]);
  kernels.dispatch(pass, get(0), [ro, t.dy.buffer, lora.b.buffer, ro, t.du.buffer, rw], { ...base, len: n, w_row: 1, w_red: r }, [Math.ceil(r / 16), Math.ceil(m / 8)]);
  kernels.dispatch(pass, get(2, true, drop), [t.x.buffer, ro, t.du.buffer, ro, grads.a.buffer, rw], { ...base, len: k, out_t: 1, accumulate: 1, scale: 1 }, [Math.ceil(k / 64), Math.ceil(r / 16)]);
  if (t.dx) {
    kernels.dispatch(pass, get(1, false, drop), [ro, ro, t.du.buffer, lora.a.buffer, rw, t.dx.buffer], { ...base, len: k, w_row: 1, w_red: k, accumulate: 1, scale: 1 }, [Math.ceil(k / 64), Math.ceil(m / 64)]);
  }
}
