// LoRA dropout through the whole model (the kernels themselves are checked against float64 with
// the mask rebuilt on the CPU in lora.test.ts and lora-backward.test.ts). With gradient
// checkpointing a layer's forward runs twice (the forward, the recompute before its backward):
// the gradient is right only if the forward, the recompute and the backward all use one mask.
// Checked by the directional derivative: for the step's draw (step 1, micro-batch 0), the loss
// L(θ ± ε g / |g|) of the training forward, by central differences, must give |g| (f32 losses:
// ε = 1e-3, agreement within 0.1%); a control with the gradient of another draw must miss by far.
// Dropout stays out of eval: after a step with dropout, the eval loss is the plain forward's.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createForwardRun, destroyForwardRun, forwardBatch, type ForwardRun, type PackedBatch } from '../src/engine/forward.ts';
import type { Gpu } from '../src/engine/gpu.ts';
import { Kernels } from '../src/engine/kernels.ts';
import { destroyLora, loraFromAdapter, setLoraDropout, type LoraSet } from '../src/engine/lora-weights.ts';
import { destroyModelWeights, modelFromReader, type ModelWeights } from '../src/engine/model.ts';
import { readTensor } from '../src/engine/tensor.ts';
import { evaluateLoss } from '../src/engine/train/eval.ts';
import { arrayRowSource } from '../src/engine/train/loop.ts';
import { accumulateGrads, createTrainer, destroyTrainer, type Trainer } from '../src/engine/train/step.ts';
import { readParityFixture, type ParityFixture } from './forward-helpers.ts';
import { testGpu } from './gpu/device.ts';

const P = 0.3;
const SEED = 5;

let gpu: Gpu;
let kernels: Kernels;
let f: ParityFixture;
let model: ModelWeights;
beforeAll(async () => {
  gpu = await testGpu();
  kernels = new Kernels(gpu);
  f = await readParityFixture('llama');
  model = await modelFromReader(kernels, f.arch, f.weights, { dtype: 'f32' });
});
afterAll(() => destroyModelWeights(model));

const batch = (): PackedBatch => ({ batch: f.batch, seqLen: f.seqLen, inputIds: f.inputIds, positionIds: f.positionIds, segmentIds: f.segmentIds, lossMask: f.lossMask });

/** The grads of one accumulation at optimizer step `step` (its dropout draw), as f32 per param. */
async function gradsAt(tr: Trainer, step: number): Promise<Float32Array[]> {
  tr.step = step;
  await accumulateGrads(tr, [batch()]);
  return Promise.all(tr.params.map((p) => readTensor(gpu.device, p.grad)));
}

/** The training-mode loss (step `step`, micro-batch 0) with every param moved by t · d. */
async function lossAlong(run: ForwardRun, lora: LoraSet, tr: Trainer, theta: Float32Array[], d: Float32Array[], t: number, step: number): Promise<number> {
  tr.params.forEach((p, i) => gpu.device.queue.writeBuffer(p.param.buffer, 0, theta[i].map((x, j) => x + t * d[i][j])));
  setLoraDropout(lora, { p: P, seed: SEED, step, micro: 0 });
  try {
    return (await forwardBatch(run, batch(), { loss: true })).loss!;
  } finally {
    setLoraDropout(lora, null);
  }
}

describe('LoRA dropout in training', () => {
  it('gradients match the directional derivative of the loss under the same mask (forward, recompute, backward agree)', async () => {
    const lora = loraFromAdapter(gpu.device, f.arch, f.adapter);
    const run = createForwardRun({ kernels, model, lora }, { batch: f.batch, seqLen: f.seqLen });
    const tr = createTrainer(run, { schedule: () => 0, loraDropout: P, dropoutSeed: SEED });
    const theta = await Promise.all(tr.params.map((p) => readTensor(gpu.device, p.param)));
    const eps = 1e-3;
    const check = async (g: Float32Array[]) => {
      const norm = Math.sqrt(g.reduce((s, x) => s + x.reduce((a, v) => a + v * v, 0), 0));
      const d = g.map((x) => x.map((v) => v / norm));
      const up = await lossAlong(run, lora, tr, theta, d, eps, 1);
      const down = await lossAlong(run, lora, tr, theta, d, -eps, 1);
      // d · ∇L (step 1's mask) by central differences; the backward claims it is g · d = |g|.
      return { fd: (up - down) / (2 * eps), norm };
    };
    const g1 = await gradsAt(tr, 1);
    const same = await check(g1);
    const errSame = Math.abs(same.fd - same.norm) / same.norm;
    // Control: step 2's gradient (another mask) taken as if it were step 1's.
    const g2 = await gradsAt(tr, 2);
    const other = await check(g2);
    // Along g2 / |g2| the derivative of step 1's loss is ∇L1 · g2 / |g2|; claiming |g2| is wrong.
    const errOther = Math.abs(other.fd - other.norm) / other.norm;
    console.log(`dropout ${P}: |g| ${same.norm.toFixed(5)}, finite difference ${same.fd.toFixed(5)} (relative ${errSame.toExponential(2)}); another draw's gradient misses by ${errOther.toExponential(2)}`);
    expect(errSame).toBeLessThan(1e-3);
    expect(errOther).toBeGreaterThan(5e-2);
    tr.params.forEach((p, i) => gpu.device.queue.writeBuffer(p.param.buffer, 0, theta[i]));

    // Dropout changes the training loss but not eval: the plain forward's loss, bit for bit.
    const plain = (await forwardBatch(run, batch(), { loss: true })).loss!;
    const dropped = await lossAlong(run, lora, tr, theta, theta.map((x) => new Float32Array(x.length)), 0, 1);
    const rows = arrayRowSource(
      Array.from({ length: f.batch }, (_, r) => {
        const sl = (x: Int32Array) => x.subarray(r * f.seqLen, (r + 1) * f.seqLen);
        return { inputIds: sl(f.inputIds), segmentIds: sl(f.segmentIds), lossMask: sl(f.lossMask) };
      }),
      f.seqLen,
    );
    const evalLoss = await evaluateLoss(run, rows, f.batch);
    console.log(`dropout ${P}: training-mode loss ${dropped.toFixed(6)}, eval ${evalLoss.loss.toFixed(6)} = plain ${plain.toFixed(6)}`);
    expect(Math.abs(dropped - plain)).toBeGreaterThan(1e-4);
    expect(evalLoss.loss).toBe(plain);
    expect(lora.layers.every((l) => Object.values(l).every((w) => !w.dropout))).toBe(true);
    destroyTrainer(tr);
    destroyForwardRun(run);
    destroyLora(lora);
  });
});
