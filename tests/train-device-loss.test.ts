// A lost GPU device during training (issue 6, item 7): the run fails, the last checkpoint stays
// whole, and a new device resumes from it with the losses of an uninterrupted run. The device is
// really destroyed (device.destroy(), what the trainer worker's loseDevice() does): once between
// steps, once while a checkpoint's tensors are being read back and written.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getGpu, type Gpu } from '../src/engine/gpu.ts';
import { Kernels } from '../src/engine/kernels.ts';
import { destroyLora } from '../src/engine/lora-weights.ts';
import { destroyModelWeights, modelFromReader, type ModelWeights } from '../src/engine/model.ts';
import { loadCheckpoint } from '../src/engine/train/checkpoint.ts';
import { arrayRowSource, DEFAULT_TRAIN_SETTINGS, runTraining, type RowSource, type StepMetrics, type TrainSettings } from '../src/engine/train/loop.ts';
import { MemoryCheckpointStore, type CheckpointStore } from '../src/io/checkpoint-store.ts';
import { readParityFixture, type ParityFixture } from './forward-helpers.ts';
import { testGpu } from './gpu/device.ts';

let f: ParityFixture;
let gpu: Gpu;
let kernels: Kernels;
let model: ModelWeights;
let data: RowSource;
beforeAll(async () => {
  f = await readParityFixture('llama');
  gpu = await testGpu();
  kernels = new Kernels(gpu);
  model = await modelFromReader(kernels, f.arch, f.weights, { dtype: 'f32' });
  const rows = Array.from({ length: f.batch }, (_, r) => {
    const sl = (x: Int32Array) => x.subarray(r * f.seqLen, (r + 1) * f.seqLen);
    return { inputIds: sl(f.inputIds), segmentIds: sl(f.segmentIds), lossMask: sl(f.lossMask) };
  });
  data = arrayRowSource(rows, f.seqLen);
});
afterAll(() => destroyModelWeights(model));

const settings: TrainSettings = {
  ...DEFAULT_TRAIN_SETTINGS,
  loraR: 8,
  learningRate: 1e-2,
  optimizer: 'adamw_8bit',
  min8bitSize: 0,
  batchSize: 1,
  gradAccum: 1,
  warmupSteps: 1,
  maxSteps: 6,
  checkpointEvery: 2,
};

/** A store that destroys `device` once the write of checkpoint number `atCommit` has begun. */
function sabotaged(store: MemoryCheckpointStore, device: GPUDevice, atCommit: number): CheckpointStore {
  let commits = 0;
  return {
    kind: 'sabotaged',
    read: (n) => store.read(n),
    list: () => store.list(),
    remove: (n) => store.remove(n),
    async write(name, bytes) {
      if (name.endsWith('.safetensors') && ++commits === atCommit) {
        const inner = bytes as AsyncIterable<Uint8Array>;
        return store.write(name, (async function* () {
          let first = true;
          for await (const chunk of inner) {
            yield chunk;
            if (first) device.destroy(); // after the header: the tensors' readbacks now fail
            first = false;
          }
        })());
      }
      return store.write(name, bytes);
    },
  };
}

describe('a lost GPU device keeps the last checkpoint', () => {
  let reference: StepMetrics[];
  beforeAll(async () => {
    reference = [];
    const r = await runTraining(kernels, model, data, settings, (m) => reference.push(m));
    destroyLora(r.lora);
  });

  for (const when of ['between steps', 'while a checkpoint is written'] as const) {
    it(when, async () => {
      // A device of its own, lost for real.
      const doomed = await getGpu();
      const k = new Kernels(doomed);
      const m = await modelFromReader(k, f.arch, f.weights, { dtype: 'f32' });
      const store = new MemoryCheckpointStore();
      const events: StepMetrics[] = [];
      const run = runTraining(
        k,
        m,
        data,
        settings,
        (x) => {
          events.push(x);
          if (when === 'between steps' && x.step === 3) doomed.device.destroy();
        },
        { store: when === 'between steps' ? store : sabotaged(store, doomed.device, 2) },
      );
      const error = await run.then(() => null, (e: Error) => e);
      expect(error).toBeInstanceOf(Error);
      console.log(`device lost ${when}: the run failed with ${error!.name} "${error!.message}"`);
      // Checkpoint 1 (step 2) is whole either way; checkpoint 2 (step 4) never started or never finished.
      const ckpt = await loadCheckpoint(store);
      expect(ckpt?.state.step).toBe(2);
      console.log(`device lost ${when}: ${events.length} steps reported, resuming from the checkpoint of step ${ckpt?.state.step}`);

      // A new device (here the shared one), a fresh everything, the checkpoint: the same losses.
      const resumed: StepMetrics[] = [];
      const r = await runTraining(kernels, model, data, settings, (x) => resumed.push(x), { resumeFrom: ckpt! });
      destroyLora(r.lora);
      expect(resumed.map((e) => e.step)).toEqual([3, 4, 5, 6]);
      const worst = Math.max(...resumed.map((e, i) => Math.abs(e.loss - reference[2 + i].loss) / reference[2 + i].loss));
      console.log(`device lost ${when}: resumed losses vs uninterrupted, max relative difference ${worst.toExponential(2)}`);
      expect(worst).toBeLessThanOrEqual(1e-6);
    });
  }
});
