// The training loop (src/engine/train/loop.ts) on the llama fixture model: fresh PEFT-initialised
// LoRA, rows from memory or from a prepared dataset's shards (PreparedStore over MemoryKv), metrics
// per step, accumulation, abort. The numbers themselves are checked in train-parity.test.ts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../src/engine/gpu.ts';
import { Kernels } from '../src/engine/kernels.ts';
import { destroyLora } from '../src/engine/lora-weights.ts';
import { destroyModelWeights, modelFromReader, type ModelWeights } from '../src/engine/model.ts';
import { arrayRowSource, DEFAULT_TRAIN_SETTINGS, rowPositions, runTraining, type StepMetrics, type TrainSettings } from '../src/engine/train/loop.ts';
import { shardRowSource } from '../src/engine/train/shard-source.ts';
import { MemoryKv } from '../src/data/kv.ts';
import { encodeRows } from '../src/data/shards.ts';
import { PreparedStore, type PreparedManifest } from '../src/data/store.ts';
import { readParityFixture, type ParityFixture } from './forward-helpers.ts';
import { testGpu } from './gpu/device.ts';

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

const rows = () =>
  Array.from({ length: f.batch }, (_, r) => {
    const sl = (x: Int32Array) => x.subarray(r * f.seqLen, (r + 1) * f.seqLen);
    return { inputIds: sl(f.inputIds), segmentIds: sl(f.segmentIds), lossMask: sl(f.lossMask) };
  });

const settings: TrainSettings = {
  ...DEFAULT_TRAIN_SETTINGS,
  loraR: 8,
  learningRate: 1e-2,
  optimizer: 'adamw',
  batchSize: 1,
  gradAccum: 2,
  warmupSteps: 0,
  schedule: 'constant',
  maxSteps: 6,
};

describe('training loop', () => {
  it('position ids restart at each row and document', () => {
    expect(Array.from(rowPositions([1, 1, 1, 1, 2, 2, 0, 0], 4))).toEqual([0, 1, 2, 3, 0, 1, 0, 0]);
    expect(Array.from(rowPositions([1, 1, 1, 1, 1, 1], 3))).toEqual([0, 1, 2, 0, 1, 2]);
  });

  it('trains from rows in memory: a metrics event per step, the loss falls', async () => {
    const events: StepMetrics[] = [];
    const r = await runTraining(kernels, model, arrayRowSource(rows(), f.seqLen), settings, (m) => events.push(m));
    expect(r.stopped).toBe('done');
    expect(events.map((e) => e.step)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(events.every((e) => Number.isFinite(e.loss) && !e.skipped && e.trainedTokens > 0 && e.tokensPerSecond > 0)).toBe(true);
    // Fresh LoRA (B = 0): the first loss is the base model's; one step per epoch of the two rows.
    expect(events.at(-1)!.loss).toBeLessThan(events[0].loss - 0.05);
    expect(events[1].epoch).toBe(1);
    destroyLora(r.lora);
  });

  it('a failure while a step is in flight ends the run with that error, after the step (the device stays usable)', async () => {
    const errors: unknown[] = [];
    const onError = (e: unknown) => errors.push(e);
    gpu.device.addEventListener('uncapturederror', onError);
    try {
      await expect(
        runTraining(kernels, model, arrayRowSource(rows(), f.seqLen), settings, (m) => {
          if (m.step === 1) throw new Error('metrics sink failed');
        }),
      ).rejects.toThrow('metrics sink failed');
      const again = await runTraining(kernels, model, arrayRowSource(rows(), f.seqLen), { ...settings, maxSteps: 2 }, () => undefined);
      expect(again.stopped).toBe('done');
      destroyLora(again.lora);
    } finally {
      gpu.device.removeEventListener('uncapturederror', onError);
    }
    expect(errors).toEqual([]);
  });

  it('stopAfter ends the run after that step, on the schedule of the whole run (no step past it on the GPU)', async () => {
    const linear = { ...settings, schedule: 'linear' as const, maxSteps: 6 };
    const events: StepMetrics[] = [];
    const whole: StepMetrics[] = [];
    const r = await runTraining(kernels, model, arrayRowSource(rows(), f.seqLen), linear, (m) => events.push(m), { stopAfter: 3 });
    expect(r).toMatchObject({ stopped: 'aborted', steps: 3 });
    const w = await runTraining(kernels, model, arrayRowSource(rows(), f.seqLen), linear, (m) => whole.push(m));
    expect(events.map((e) => [e.step, e.lr, e.loss])).toEqual(whole.slice(0, 3).map((e) => [e.step, e.lr, e.loss]));
    for (const x of [r, w]) destroyLora(x.lora);
  });

  it('reads the rows of a prepared dataset, and stops when aborted', async () => {
    const store = new PreparedStore(new MemoryKv());
    const rs = rows().map((x) => ({
      input_ids: Array.from(x.inputIds),
      labels_mask: Array.from(x.lossMask),
      segment_ids: Array.from(x.segmentIds),
      tokens: f.seqLen,
    }));
    const manifest = {
      version: 1,
      fingerprint: 'fp',
      options: { maxSeqLength: f.seqLen },
      shards: [
        { trainRows: 1, validationRows: 0, bytes: 0 },
        { trainRows: 1, validationRows: 0, bytes: 0 },
      ],
    } as unknown as PreparedManifest;
    type Row = Parameters<typeof encodeRows>[0][number];
    await store.commit(manifest, 0, { train: encodeRows([rs[0] as unknown as Row], f.seqLen) });
    await store.commit(manifest, 1, { train: encodeRows([rs[1] as unknown as Row], f.seqLen) });
    const source = await shardRowSource(store, 'fp');
    expect(source.rows).toBe(2);
    const b = await source.read(0, 2);
    expect(Array.from(b.inputIds)).toEqual(Array.from(f.inputIds));
    expect(Array.from(b.positionIds)).toEqual(Array.from(f.positionIds));
    const ctrl = new AbortController();
    const events: StepMetrics[] = [];
    const r = await runTraining(kernels, model, source, settings, (m) => {
      events.push(m);
      if (m.step === 2) ctrl.abort();
    }, ctrl.signal);
    expect(r.stopped).toBe('aborted');
    // Step 3 was on the GPU when step 2's metrics came (the loop runs a step ahead): it finishes.
    expect(events.map((e) => e.step)).toEqual([1, 2, 3]);
    destroyLora(r.lora);
  });

  it('evaluates on the validation split of a prepared dataset (as the trainer worker reads it)', async () => {
    const store = new PreparedStore(new MemoryKv());
    type Row = Parameters<typeof encodeRows>[0][number];
    const rs = rows().map((x) => ({ input_ids: Array.from(x.inputIds), labels_mask: Array.from(x.lossMask), segment_ids: Array.from(x.segmentIds), tokens: f.seqLen }) as unknown as Row);
    const manifest = {
      version: 1,
      fingerprint: 'fp2',
      options: { maxSeqLength: f.seqLen },
      shards: [
        { trainRows: 2, validationRows: 0, bytes: 0 },
        { trainRows: 0, validationRows: 1, bytes: 0 },
      ],
    } as unknown as PreparedManifest;
    await store.commit(manifest, 0, { train: encodeRows(rs, f.seqLen) });
    await store.commit(manifest, 1, { validation: encodeRows([rs[1]], f.seqLen) });
    const train = await shardRowSource(store, 'fp2');
    const validation = await shardRowSource(store, 'fp2', 'validation');
    expect([train.rows, validation.rows]).toEqual([2, 1]);
    const events: StepMetrics[] = [];
    const r = await runTraining(kernels, model, train, { ...settings, maxSteps: 2, evalEvery: 1 }, (m) => events.push(m), { evalData: validation });
    destroyLora(r.lora);
    // The validation row is also trained on here, so its loss falls from eval to eval.
    expect(events.every((e) => Number.isFinite(e.evalLoss))).toBe(true);
    expect(events[1].evalLoss!).toBeLessThan(events[0].evalLoss!);
    expect(r.evalLoss).toBe(events[1].evalLoss);
  });
});
