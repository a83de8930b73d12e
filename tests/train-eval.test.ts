// Eval loss (src/engine/train/eval.ts) and early stopping, on the llama parity fixture with its
// PEFT adapter (B != 0, so the adapter matters):
//   - evaluateLoss over the two rows equals the forward-only path (forwardBatch), the training
//     loss of step 1 before its update (the same normalisation: mean over the trained tokens of
//     all rows), and PyTorch's loss, within 1e-6 relative;
//   - in a run whose every step covers the whole data, the eval after step k equals the training
//     loss of step k + 1 (taken before its update, with the same weights), within 1e-6;
//   - early stopping with a constant eval loss (lr 0) stops after `patience` evals, also across a
//     pause and resume; with a falling loss it never triggers;
//   - step metrics carry GPU memory: at least the run's own LoRA, grads and optimizer states.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createForwardRun, destroyForwardRun, forwardBatch, type PackedBatch } from '../src/engine/forward.ts';
import type { Gpu } from '../src/engine/gpu.ts';
import { gpuMemory } from '../src/engine/gpu-memory.ts';
import { Kernels } from '../src/engine/kernels.ts';
import { destroyLora, loraFromAdapter, loraTargets } from '../src/engine/lora-weights.ts';
import { destroyModelWeights, modelFromReader, type ModelWeights } from '../src/engine/model.ts';
import { loadCheckpoint } from '../src/engine/train/checkpoint.ts';
import { evaluateLoss } from '../src/engine/train/eval.ts';
import { arrayRowSource, DEFAULT_TRAIN_SETTINGS, runTraining, type RowSource, type StepMetrics, type TrainSettings } from '../src/engine/train/loop.ts';
import { createTrainer, destroyTrainer, submitStep } from '../src/engine/train/step.ts';
import { MemoryCheckpointStore } from '../src/io/checkpoint-store.ts';
import { readParityFixture, type ParityFixture } from './forward-helpers.ts';
import { testGpu } from './gpu/device.ts';

const TOL = 1e-6;

let gpu: Gpu;
let kernels: Kernels;
let f: ParityFixture;
let model: ModelWeights;
let rows: RowSource;
beforeAll(async () => {
  gpu = await testGpu();
  kernels = new Kernels(gpu);
  f = await readParityFixture('llama');
  model = await modelFromReader(kernels, f.arch, f.weights, { dtype: 'f32' });
  const list = Array.from({ length: f.batch }, (_, r) => {
    const sl = (x: Int32Array) => x.subarray(r * f.seqLen, (r + 1) * f.seqLen);
    return { inputIds: sl(f.inputIds), segmentIds: sl(f.segmentIds), lossMask: sl(f.lossMask) };
  });
  rows = arrayRowSource(list, f.seqLen);
});
afterAll(() => destroyModelWeights(model));

const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

const whole = (): PackedBatch => ({ batch: f.batch, seqLen: f.seqLen, inputIds: f.inputIds, positionIds: f.positionIds, segmentIds: f.segmentIds, lossMask: f.lossMask });

describe('eval loss', () => {
  it('equals the forward-only loss, the loss of step 1 before its update, and PyTorch', async () => {
    const lora = loraFromAdapter(gpu.device, f.arch, f.adapter);
    const run = createForwardRun({ kernels, model, lora }, { batch: 1, seqLen: f.seqLen });
    const other = createForwardRun({ kernels, model, lora }, { batch: f.batch, seqLen: f.seqLen, checkpoints: false });
    const evalLoss = await evaluateLoss(run, rows, 1); // one row per forward
    const forward = await forwardBatch(other, whole(), { loss: true }); // both rows in one
    const tr = createTrainer(run, { schedule: () => 1e-3 });
    const step = await submitStep(tr, [await rows.read(0, 1), await rows.read(1, 1)]); // accumulation 2
    console.log(
      `eval loss ${evalLoss.loss.toFixed(7)} (${evalLoss.trainedTokens} tokens); forward ${forward.loss!.toFixed(7)}; step 1 ${step.loss.toFixed(7)}; torch ${f.loss.toFixed(7)}; ` +
        `max relative difference ${Math.max(rel(evalLoss.loss, forward.loss!), rel(evalLoss.loss, step.loss)).toExponential(2)}`,
    );
    expect(evalLoss.trainedTokens).toBe(forward.trainedTokens);
    expect(evalLoss.trainedTokens).toBe(step.trainedTokens);
    expect(rel(evalLoss.loss, forward.loss!)).toBeLessThan(TOL);
    expect(rel(evalLoss.loss, step.loss)).toBeLessThan(TOL);
    expect(rel(evalLoss.loss, f.loss)).toBeLessThan(TOL);
    // After the update the eval sees the new weights.
    const after = await evaluateLoss(run, rows, 1);
    expect(after.loss).toBeLessThan(evalLoss.loss);
    destroyTrainer(tr);
    destroyForwardRun(run);
    destroyForwardRun(other);
    destroyLora(lora);
  });

  it('in a run, the eval after step k is the training loss of step k + 1; metrics carry GPU memory', async () => {
    const settings: TrainSettings = { ...DEFAULT_TRAIN_SETTINGS, loraR: 8, learningRate: 1e-2, optimizer: 'adamw', batchSize: 1, gradAccum: 2, warmupSteps: 0, schedule: 'constant', maxSteps: 5, evalEvery: 2 };
    const before = gpuMemory(gpu.device).bytes;
    const events: StepMetrics[] = [];
    const r = await runTraining(kernels, model, rows, settings, (m) => events.push(m), { evalData: rows });
    destroyLora(r.lora);
    expect(events.map((e) => e.evalLoss !== undefined)).toEqual([false, true, false, true, true]); // every 2, and the last
    let worst = 0;
    for (const k of [2, 4]) worst = Math.max(worst, rel(events[k - 1].evalLoss!, events[k].loss));
    console.log(`run eval: ${events.map((e) => `${e.step}: ${e.loss.toFixed(5)}${e.evalLoss ? ` (eval ${e.evalLoss.toFixed(5)})` : ''}`).join(', ')}; eval vs next step's loss ${worst.toExponential(2)}`);
    expect(worst).toBeLessThan(TOL);
    expect(r.evalLoss).toBe(events[4].evalLoss);
    expect(r.bestEvalLoss).toBe(Math.min(...events.flatMap((e) => (e.evalLoss === undefined ? [] : [e.evalLoss]))));

    // LoRA A and B, their grads, AdamW's m and v (32-bit): 16 bytes a parameter, all tracked.
    const params = loraTargets(f.arch, { r: 8, alpha: 16, targets: settings.targets }).reduce((s, t) => s + 8 * (t.in + t.out), 0);
    const last = events.at(-1)!;
    console.log(`run memory: ${last.gpuMemoryBytes} bytes tracked in the run (${before} before it), peak ${last.gpuMemoryPeak}; LoRA state ${16 * params}`);
    expect(last.gpuMemoryBytes! - before).toBeGreaterThanOrEqual(16 * params);
    expect(last.gpuMemoryPeak!).toBeGreaterThanOrEqual(last.gpuMemoryBytes!);
    expect(gpuMemory(gpu.device).bytes).toBe(before); // everything the run made is freed
  });
});

describe('early stopping', () => {
  const base: TrainSettings = { ...DEFAULT_TRAIN_SETTINGS, loraR: 8, optimizer: 'adamw', batchSize: 1, gradAccum: 2, warmupSteps: 0, schedule: 'constant', maxSteps: 8, evalEvery: 1 };

  it('stops after `patience` evals without improvement (lr 0: the eval loss never moves)', async () => {
    const events: StepMetrics[] = [];
    const r = await runTraining(kernels, model, rows, { ...base, learningRate: 0, earlyStoppingPatience: 2 }, (m) => events.push(m), { evalData: rows });
    destroyLora(r.lora);
    expect(r.stopped).toBe('early-stopped');
    expect(events.map((e) => e.step)).toEqual([1, 2, 3]);
    expect(new Set(events.map((e) => e.evalLoss)).size).toBe(1);
    expect(r.message).toMatch(/did not improve for 2 evaluations in a row \(best .* at step 1\)/);
    console.log(`early stopping: ${r.message}`);
  });

  it('survives a pause: the resumed run stops where the whole run would', async () => {
    const settings = { ...base, learningRate: 0, earlyStoppingPatience: 3 };
    const store = new MemoryCheckpointStore();
    const pause = new AbortController();
    const first = await runTraining(kernels, model, rows, settings, (m) => m.step === 2 && pause.abort(), { evalData: rows, store, pause: pause.signal });
    destroyLora(first.lora);
    expect(first.stopped).toBe('paused');
    const ckpt = (await loadCheckpoint(store))!;
    expect(ckpt.state.earlyStop).toMatchObject({ bestStep: 1, sinceBest: 1 });
    const steps: number[] = [];
    const second = await runTraining(kernels, model, rows, settings, (m) => steps.push(m.step), { evalData: rows, resumeFrom: ckpt });
    destroyLora(second.lora);
    expect(second.stopped).toBe('early-stopped');
    expect(steps).toEqual([3, 4]);
  });

  it('never triggers while the eval loss falls', async () => {
    const events: StepMetrics[] = [];
    const r = await runTraining(kernels, model, rows, { ...base, learningRate: 1e-2, maxSteps: 5, earlyStoppingPatience: 1 }, (m) => events.push(m), { evalData: rows });
    destroyLora(r.lora);
    expect(r.stopped).toBe('done');
    const evals = events.map((e) => e.evalLoss!);
    expect(evals.every((x, i) => i === 0 || x < evals[i - 1])).toBe(true);
  });
});
