// The training step against PyTorch + PEFT (tests/fixtures/parity, tools/reference/
// make_llama_fixtures.py): the dense (unquantized) fixture model in f32 with its PEFT adapter
// (r 8, alpha 16, rsLoRA, all seven targets), the packed batch [2, 48] with response-only masks.
//   (a) the LoRA grads of one backward vs grad.* — max |got - want| / max |want| per tensor < 1e-4;
//   (b) 20 AdamW steps (lr 1e-3, betas .9/.999, eps 1e-8, wd 0.01, clip 1.0, the fixture script's
//       own LambdaLR: (s + 1) / (warmup + 1) in warmup, then linear decay; warmup 2): the loss
//       before each step within 1e-3 relative, the grad norms within 1e-3 relative;
//   (c) accumulation: both rows in one micro-batch vs two micro-batches of one row: the same grads
//       (the loss normalised over the trained tokens of the whole accumulated batch), < 1e-5.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createForwardRun, destroyForwardRun, type PackedBatch } from '../src/engine/forward.ts';
import type { Gpu } from '../src/engine/gpu.ts';
import { Kernels } from '../src/engine/kernels.ts';
import { destroyLora, loraFromAdapter } from '../src/engine/lora-weights.ts';
import { destroyModelWeights, modelFromReader } from '../src/engine/model.ts';
import { readLoraGrads } from '../src/engine/train/grads.ts';
import { lrLambda } from '../src/engine/train/schedule.ts';
import { accumulateGrads, createTrainer, destroyTrainer, submitStep, type Trainer } from '../src/engine/train/step.ts';
import { readParityFixture, relToMax, type ParityFixture, type Variant } from './forward-helpers.ts';
import { testGpu } from './gpu/device.ts';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { bytesSource, openSafetensors } from '../src/io/safetensors.ts';

const GRAD_TOL = 1e-4;
const CURVE_TOL = 1e-3;
const ACCUM_TOL = 1e-5;

let gpu: Gpu;
let kernels: Kernels;
beforeAll(async () => {
  gpu = await testGpu();
  kernels = new Kernels(gpu);
});

function packed(f: ParityFixture, rows?: [number, number]): PackedBatch {
  const [r0, r1] = rows ?? [0, f.batch];
  const sl = (x: Int32Array) => x.subarray(r0 * f.seqLen, r1 * f.seqLen);
  return {
    batch: r1 - r0,
    seqLen: f.seqLen,
    inputIds: sl(f.inputIds),
    positionIds: sl(f.positionIds),
    segmentIds: sl(f.segmentIds),
    lossMask: sl(f.lossMask),
  };
}

interface Expected {
  losses: number[];
  grad_norms: number[];
  lrs: number[];
  adamw: { lr: number; betas: [number, number]; eps: number; weight_decay: number; max_grad_norm: number; warmup_steps: number; steps: number };
}

async function setup(f: ParityFixture): Promise<{ tr: Trainer; free: () => void; expected: Expected }> {
  const expected = JSON.parse(readFileSync(join(f.dir, 'expected.json'), 'utf8')) as Expected;
  const model = await modelFromReader(kernels, f.arch, f.weights, { dtype: 'f32' });
  const lora = loraFromAdapter(gpu.device, f.arch, f.adapter);
  const run = createForwardRun({ kernels, model, lora }, { batch: f.batch, seqLen: f.seqLen });
  const a = expected.adamw;
  const warmup = a.warmup_steps;
  // The fixture script's own LambdaLR (not transformers' linear schedule, which starts at 0).
  const schedule = (s: number) => a.lr * (s < warmup ? (s + 1) / (warmup + 1) : Math.max(0, (a.steps - s) / (a.steps - warmup)));
  const tr = createTrainer(run, {
    schedule,
    adamw: { beta1: a.betas[0], beta2: a.betas[1], eps: a.eps, weightDecay: a.weight_decay },
    maxGradNorm: a.max_grad_norm,
  });
  const free = () => {
    destroyTrainer(tr);
    destroyForwardRun(run);
    destroyLora(lora);
    destroyModelWeights(model);
  };
  return { tr, free, expected };
}

const relErr = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

describe.each(['llama', 'qwen2', 'llama3-tied', 'qwen3'] satisfies Variant[])('%s', (variant) => {
  let f: ParityFixture;
  let ctx: Awaited<ReturnType<typeof setup>>;
  beforeAll(async () => {
    f = await readParityFixture(variant);
    ctx = await setup(f);
  });
  afterAll(() => ctx?.free());

  it('LoRA grads of one backward match PEFT', async () => {
    const { tr } = ctx;
    const { loss } = await accumulateGrads(tr, [packed(f)]);
    const got = await readLoraGrads(gpu.device, f.arch, tr.grads);
    const exp = await openSafetensors(bytesSource(new Uint8Array(readFileSync(join(f.dir, 'expected.safetensors'))), 'expected'));
    let worst = 0;
    let worstName = '';
    for (const [path, g] of got) {
      for (const [which, x] of [['A', g.a], ['B', g.b]] as const) {
        const want = await exp.readF32(`grad.base_model.model.${path}.lora_${which}.default.weight`);
        const err = relToMax(x, want);
        if (err > worst) [worst, worstName] = [err, `${path}.lora_${which}`];
        expect(err, `${path}.lora_${which}`).toBeLessThan(GRAD_TOL);
      }
    }
    expect(got.size).toBe(f.arch.layers * 7);
    console.log(`train ${variant}: loss ${loss.toFixed(6)} vs ${f.loss.toFixed(6)}; worst grad ${worst.toExponential(2)} (${worstName})`);
    expect(relErr(loss, f.loss)).toBeLessThan(1e-6);
  });

  it('accumulation: two micro-batches of one row give the grads of one batch of two', async () => {
    const { tr } = ctx;
    await accumulateGrads(tr, [packed(f)]);
    const whole = await readLoraGrads(gpu.device, f.arch, tr.grads);
    const r = await accumulateGrads(tr, [packed(f, [0, 1]), packed(f, [1, 2])]);
    const split = await readLoraGrads(gpu.device, f.arch, tr.grads);
    let worst = 0;
    for (const [path, g] of whole) {
      const s = split.get(path)!;
      worst = Math.max(worst, relToMax(s.a, g.a), relToMax(s.b, g.b));
    }
    console.log(`train ${variant}: accumulation 2 x 1 vs 1 x 2 worst grad ${worst.toExponential(2)}`);
    expect(worst).toBeLessThan(ACCUM_TOL);
    expect(relErr(r.loss, f.loss)).toBeLessThan(1e-6);
  });

  it('20 AdamW steps follow PyTorch loss curve and grad norms', async () => {
    const { tr, expected } = ctx;
    const losses: number[] = [];
    const norms: number[] = [];
    let worstLoss = 0;
    let worstNorm = 0;
    for (let s = 0; s < expected.losses.length; s++) {
      const r = await submitStep(tr, [packed(f)]);
      expect(r.skipped).toBe(false);
      expect(relErr(r.lr, expected.lrs[s])).toBeLessThan(1e-12);
      losses.push(r.loss);
      norms.push(r.gradNorm);
      worstLoss = Math.max(worstLoss, relErr(r.loss, expected.losses[s]));
      worstNorm = Math.max(worstNorm, relErr(r.gradNorm, expected.grad_norms[s]));
    }
    console.log(
      `train ${variant}: 20 steps, loss ${losses[0].toFixed(5)} -> ${losses.at(-1)!.toFixed(5)} ` +
        `(torch ${expected.losses.at(-1)!.toFixed(5)}); worst loss ${worstLoss.toExponential(2)}, grad norm ${worstNorm.toExponential(2)}`,
    );
    expect(worstLoss).toBeLessThan(CURVE_TOL);
    expect(worstNorm).toBeLessThan(CURVE_TOL);
  });
});

describe('schedules (transformers)', () => {
  it('linear, cosine, constant with warmup steps or ratio', () => {
    const lin = { kind: 'linear' as const, totalSteps: 10, warmupSteps: 2 };
    expect([0, 1, 2, 6, 10].map((s) => lrLambda(lin, s))).toEqual([0, 0.5, 1, 0.5, 0]);
    const cos = { kind: 'cosine' as const, totalSteps: 12, warmupRatio: 1 / 6 };
    expect(lrLambda(cos, 1)).toBe(0.5);
    expect(lrLambda(cos, 2)).toBe(1);
    expect(lrLambda(cos, 7)).toBeCloseTo(0.5, 12);
    expect(lrLambda(cos, 12)).toBeCloseTo(0, 12);
    const con = { kind: 'constant' as const, totalSteps: 5, warmupSteps: 4 };
    expect([0, 2, 4, 5].map((s) => lrLambda(con, s))).toEqual([0, 0.5, 1, 1]);
  });
});
