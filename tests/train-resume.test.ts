// Checkpoint and resume (issue 6, item 7): train 10 steps without a break; train 5, pause (a
// checkpoint, then stop), carry only the checkpoint's bytes to a new store, build everything
// again (fresh LoRA set from the seed, fresh optimizer, fresh arena) and resume for the other 5.
// The 10 losses, the grad norms and the final adapter must match within 1e-6 relative (f32; the
// kernels are deterministic, so the measured difference is printed and expected to be 0). Run
// for AdamW 32-bit, 8-bit (every state 8-bit: min8bitSize 0), and 32-bit with LoRA dropout (the
// masks are a hash of the step, so resuming needs no stored RNG stream). 5 rows, 2 per
// micro-batch, 2 micro-batches a step: epochs end mid-step and the pause falls mid-epoch.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gpu } from '../src/engine/gpu.ts';
import { Kernels } from '../src/engine/kernels.ts';
import { destroyLora, readLoraModules } from '../src/engine/lora-weights.ts';
import { destroyModelWeights, modelFromReader, type ModelWeights } from '../src/engine/model.ts';
import { decodeCheckpoint, latestCheckpointInfo, loadCheckpoint } from '../src/engine/train/checkpoint.ts';
import { arrayRowSource, DEFAULT_TRAIN_SETTINGS, runTraining, type RowSource, type StepMetrics, type TrainSettings } from '../src/engine/train/loop.ts';
import { MemoryCheckpointStore, type CheckpointStore } from '../src/io/checkpoint-store.ts';
import { DirectoryCheckpointStore } from '../src/io/checkpoint-store-node.ts';
import { readParityFixture, type ParityFixture } from './forward-helpers.ts';
import { testGpu } from './gpu/device.ts';

const TOL = 1e-6;

let gpu: Gpu;
let kernels: Kernels;
let f: ParityFixture;
let model: ModelWeights;
let data: RowSource;
const dirs: string[] = [];
beforeAll(async () => {
  gpu = await testGpu();
  kernels = new Kernels(gpu);
  f = await readParityFixture('llama');
  model = await modelFromReader(kernels, f.arch, f.weights, { dtype: 'f32' });
  // Five distinct rows: the fixture's two, and three with shifted token ids.
  const rows = Array.from({ length: 5 }, (_, r) => {
    const sl = (x: Int32Array) => x.subarray((r % 2) * f.seqLen, (r % 2 + 1) * f.seqLen);
    const ids = Int32Array.from(sl(f.inputIds), (id) => (id + 17 * Math.floor(r / 2)) % f.arch.vocabSize);
    return { inputIds: ids, segmentIds: sl(f.segmentIds), lossMask: sl(f.lossMask) };
  });
  data = arrayRowSource(rows, f.seqLen);
});
afterAll(() => {
  destroyModelWeights(model);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const base: TrainSettings = {
  ...DEFAULT_TRAIN_SETTINGS,
  loraR: 8,
  learningRate: 1e-2,
  schedule: 'linear',
  warmupSteps: 2,
  batchSize: 2,
  gradAccum: 2,
  maxSteps: 10,
  checkpointEvery: 3,
  evalEvery: 0,
};

async function train(settings: TrainSettings, opts: Parameters<typeof runTraining>[5] = {}, pauseAt?: number) {
  const events: StepMetrics[] = [];
  const pause = new AbortController();
  const r = await runTraining(kernels, model, data, settings, (m) => {
    events.push(m);
    if (m.step === pauseAt) pause.abort();
  }, { ...(opts as object), pause: pauseAt ? pause.signal : undefined });
  const weights = await readLoraModules(gpu.device, f.arch, r.lora);
  destroyLora(r.lora);
  return { r, events, weights };
}

/** Uninterrupted runs, by settings (the control reuses one). */
const wholeRuns = new Map<string, ReturnType<typeof train>>();
const wholeRun = (settings: TrainSettings) => {
  const key = JSON.stringify(settings);
  if (!wholeRuns.has(key)) wholeRuns.set(key, train(settings));
  return wholeRuns.get(key)!;
};

const rel = (a: number, b: number) => (a === b ? 0 : Math.abs(a - b) / Math.abs(b));

interface Case {
  label: string;
  settings: Partial<TrainSettings>;
  /** Where the first half's store lives; the second half gets a copy of only its files. */
  store: 'memory' | 'directory';
}

const cases: Case[] = [
  { label: 'adamw', settings: { optimizer: 'adamw' }, store: 'directory' },
  { label: 'adamw_8bit (every state 8-bit)', settings: { optimizer: 'adamw_8bit', min8bitSize: 0 }, store: 'memory' },
  { label: 'adamw, lora_dropout 0.1', settings: { optimizer: 'adamw', loraDropout: 0.1 }, store: 'memory' },
];

/** A new store holding only copies of `from`'s files: what a new process would find. */
function carryOver(from: CheckpointStore): CheckpointStore {
  if (from instanceof MemoryCheckpointStore) {
    const to = new MemoryCheckpointStore();
    for (const [name, bytes] of from.files) to.files.set(name, bytes.slice());
    return to;
  }
  const src = (from as DirectoryCheckpointStore).dir;
  const dst = mkdtempSync(join(tmpdir(), 'webtune-resume-'));
  dirs.push(dst);
  mkdirSync(dst, { recursive: true });
  for (const name of readdirSync(src)) writeFileSync(join(dst, name), readFileSync(join(src, name)));
  return new DirectoryCheckpointStore(dst);
}

describe('resume from a checkpoint continues with the same losses', () => {
  for (const c of cases) {
    it(c.label, async () => {
      const settings = { ...base, ...c.settings };
      const whole = await wholeRun(settings);
      expect(whole.r.stopped).toBe('done');
      expect(whole.events.map((e) => e.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);

      let store: CheckpointStore;
      if (c.store === 'memory') store = new MemoryCheckpointStore();
      else {
        const dir = mkdtempSync(join(tmpdir(), 'webtune-ckpt-'));
        dirs.push(dir);
        store = new DirectoryCheckpointStore(dir);
      }
      // Paused at step 4's metrics: step 5, already on the GPU (the loop runs a step ahead), is the last.
      const first = await train(settings, { store, run: { modelId: 'fixture/llama', dataset: 'rows-5' } }, 4);
      expect(first.r.stopped).toBe('paused');
      expect(first.events.map((e) => e.step)).toEqual([1, 2, 3, 4, 5]);
      expect(first.events.map((e) => e.checkpointed)).toEqual([false, false, true, false, false]);
      expect(first.r.checkpoint).toMatchObject({ step: 5, totalSteps: 10, reason: 'pause', modelId: 'fixture/llama', dataset: 'rows-5' });
      // Only the pause's checkpoint is left (the one of step 3 was replaced): a data file and its record.
      expect((await store.list()).sort()).toEqual(['ckpt-00000002.json', 'ckpt-00000002.safetensors']);

      const fresh = carryOver(store);
      expect(await latestCheckpointInfo(fresh)).toMatchObject({ step: 5, epoch: 3, runId: first.r.runId });
      const ckpt = await loadCheckpoint(fresh);
      expect(ckpt).not.toBeNull();
      const bits = Object.values(ckpt!.state.optimizerBits);
      expect(new Set(bits)).toEqual(new Set([c.settings.optimizer === 'adamw_8bit' ? 8 : 32]));
      // Micro-batches of 2, 2 | 1, 2 | 2, 1 | 2, 2 | 1, 2 rows: the fourth epoch has begun, 2 rows in.
      expect(ckpt!.state).toMatchObject({ step: 5, updates: 5, cursor: 2, epoch: 3 });
      const second = await train(ckpt!.state.settings, { store: fresh, resumeFrom: ckpt! });
      expect(second.r.stopped).toBe('done');
      expect(second.r.runId).toBe(first.r.runId);
      expect(second.events.map((e) => e.step)).toEqual([6, 7, 8, 9, 10]);

      const resumed = [...first.events, ...second.events];
      let worstLoss = 0;
      let worstNorm = 0;
      for (let i = 0; i < 10; i++) {
        worstLoss = Math.max(worstLoss, rel(resumed[i].loss, whole.events[i].loss));
        worstNorm = Math.max(worstNorm, rel(resumed[i].gradNorm, whole.events[i].gradNorm));
        expect(resumed[i].lr).toBe(whole.events[i].lr);
        expect(resumed[i].epoch).toBe(whole.events[i].epoch);
      }
      let worstWeight = 0;
      for (const [path, w] of whole.weights) {
        const g = second.weights.get(path)!;
        for (const [x, y] of [[g.a, w.a], [g.b, w.b]]) for (let i = 0; i < x.length; i++) worstWeight = Math.max(worstWeight, Math.abs(x[i] - y[i]));
      }
      console.log(
        `resume ${c.label}: loss ${whole.events[0].loss.toFixed(5)} -> ${whole.events[9].loss.toFixed(5)}; ` +
          `max relative difference: loss ${worstLoss.toExponential(2)}, grad norm ${worstNorm.toExponential(2)}; final weights max |diff| ${worstWeight.toExponential(2)}`,
      );
      expect(whole.events[9].loss).toBeLessThan(whole.events[0].loss - 0.05); // it trains
      expect(worstLoss).toBeLessThanOrEqual(TOL);
      expect(worstNorm).toBeLessThanOrEqual(TOL);
      expect(worstWeight).toBeLessThanOrEqual(TOL);
    });
  }

  it('control: the comparison sees a resume that lost the optimizer moments', async () => {
    const settings = { ...base, optimizer: 'adamw' as const };
    const whole = await wholeRun(settings);
    const store = new MemoryCheckpointStore();
    await train(settings, { store }, 5);
    const name = [...store.files.keys()].find((n) => n.endsWith('.safetensors'))!;
    const bytes = store.files.get(name)!.slice();
    const ckpt = (await decodeCheckpoint(bytes))!;
    for (const t of ckpt.file.tensors) if (t.name.startsWith('optimizer.')) bytes.fill(0, t.fileOffset, t.fileOffset + t.byteLength);
    const second = await train(settings, { resumeFrom: await decodeCheckpoint(bytes) });
    const worst = Math.max(...second.events.map((e, i) => rel(e.loss, whole.events[5 + i].loss)));
    console.log(`resume without the moments: max relative loss difference ${worst.toExponential(2)}`);
    expect(worst).toBeGreaterThan(100 * TOL);
  });

  it('a full storage does not stop the run: the step says so and the previous checkpoint stays', async () => {
    const inner = new MemoryCheckpointStore();
    let writes = 0;
    const full: CheckpointStore = {
      kind: 'full-after-one',
      read: (n) => inner.read(n),
      list: () => inner.list(),
      remove: (n) => inner.remove(n),
      write: async (n, d) => {
        if (++writes > 2) throw new DOMException('The storage quota was exceeded.', 'QuotaExceededError');
        return inner.write(n, d);
      },
    };
    const events: StepMetrics[] = [];
    const r = await runTraining(kernels, model, data, { ...base, optimizer: 'adamw', maxSteps: 7 }, (m) => events.push(m), { store: full });
    destroyLora(r.lora);
    expect(r.stopped).toBe('done');
    expect(events.map((e) => [e.checkpointed, !!e.checkpointError])).toEqual([
      [false, false], [false, false], [true, false], [false, false], [false, false], [false, true], [false, false],
    ]);
    expect(events[5].checkpointError).toMatch(/checkpoint of step 6 could not be written \(the one of step 3 is kept\): The storage quota was exceeded/);
    expect(r.message).toMatch(/checkpoint of step 7 could not be written/);
    expect((await loadCheckpoint(full))?.state.step).toBe(3);
  });

  it('a checkpoint is refused for other settings or other data, and a stop writes one too', async () => {
    const store = new MemoryCheckpointStore();
    const settings = { ...base, optimizer: 'adamw' as const, maxSteps: 4 };
    const stop = new AbortController();
    // Stopped at step 1's metrics: step 2 (in flight) finishes, and its checkpoint is written.
    const r = await runTraining(kernels, model, data, settings, (m) => m.step === 1 && stop.abort(), { store, signal: stop.signal });
    destroyLora(r.lora);
    expect(r.stopped).toBe('aborted');
    expect(r.checkpoint).toMatchObject({ step: 2, reason: 'stop' });
    const ckpt = (await loadCheckpoint(store))!;
    await expect(runTraining(kernels, model, data, { ...settings, learningRate: 2e-2 }, () => undefined, { resumeFrom: ckpt })).rejects.toThrow(/learningRate = 0.01, not 0.02/);
    const fewer = { ...data, rows: 4 };
    await expect(runTraining(kernels, model, fewer, settings, () => undefined, { resumeFrom: ckpt })).rejects.toThrow(/dataset changed/);
    // What may change on resume: how often to checkpoint and eval.
    const more = await runTraining(kernels, model, data, { ...settings, checkpointEvery: 1 }, () => undefined, { resumeFrom: ckpt, store });
    destroyLora(more.lora);
    expect(more).toMatchObject({ stopped: 'done', steps: 4, checkpoint: { step: 4, reason: 'end' } });
  });
});
