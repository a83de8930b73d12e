// How the runner continues a run (tools/tune/resume.ts, run-record.ts), without a GPU: which flags
// may differ from the checkpoint's settings, how a larger --max-steps extends the run, and how the
// first run's record fills in what `--resume` is not given again.
import { describe, expect, it } from 'vitest';
import type { TrainCheckpoint } from '../src/engine/train/checkpoint.ts';
import { DEFAULT_TRAIN_SETTINGS, type TrainSettings } from '../src/engine/train/loop.ts';
import { parseArgs } from '../tools/tune/args.ts';
import { UsageError } from '../tools/tune/flag-values.ts';
import { checkResumeSettings, checkSameData, checkSameModel, planResume } from '../tools/tune/resume.ts';
import { withRecord, type RunRecord } from '../tools/tune/run-record.ts';

/** A checkpoint's state as far as these checks read it (no tensors). */
function checkpoint(step: number, settings: Partial<TrainSettings>): TrainCheckpoint {
  const s: TrainSettings = { ...DEFAULT_TRAIN_SETTINGS, ...settings };
  const state = { step, totalSteps: s.maxSteps ?? 0, settings: s, run: { runId: 'r', modelId: 'webtune/demo-tiny-llama', dataset: 'abcdef0123456789' } };
  return { state, file: null } as unknown as TrainCheckpoint;
}

describe('--resume', () => {
  it('a larger --max-steps extends the run: the in-memory checkpoint says the new length, the stored one is untouched', () => {
    const ckpt = checkpoint(3, { maxSteps: 3, loraR: 8 });
    const plan = planResume(ckpt, { maxSteps: 5 }, 86);
    expect(plan.settings).toMatchObject({ maxSteps: 5, loraR: 8 });
    expect(plan.checkpoint.state.settings.maxSteps).toBe(5);
    expect(plan.checkpoint.state.totalSteps).toBe(5);
    expect(plan.note).toMatch(/^Continuing from step 3 in a run now 5 steps long \(it was 3\)/);
    expect(ckpt.state.settings.maxSteps).toBe(3);
    expect(ckpt.state.totalSteps).toBe(3);
    // The same length: nothing to say, the checkpoint as it is.
    const same = planResume(ckpt, { maxSteps: 3 }, 86);
    expect(same.note).toBeNull();
    expect(same.checkpoint).toBe(ckpt);
  });

  it('a run already past the new length is refused', () => {
    expect(() => planResume(checkpoint(5, { maxSteps: 5 }), { maxSteps: 4 }, 86)).toThrow(/the checkpoint is at step 5; a run of 4 steps has nothing left to do/);
  });

  it('flags that enter the numbers cannot change halfway; bookkeeping ones and equal values can', () => {
    const ckpt = checkpoint(3, { maxSteps: 3, loraR: 8 });
    expect(() => checkResumeSettings(ckpt, parseArgs(['--lora-r', '16']).train)).toThrow(new UsageError('--resume: the run was started with --lora-r 8, and it cannot change halfway (the steps so far depend on it); leave --lora-r out.'));
    expect(() => checkResumeSettings(ckpt, parseArgs(['--warmup-ratio', '0.1']).train)).toThrow(/started with --warmup-ratio unset/);
    expect(() => checkResumeSettings(ckpt, parseArgs(['--lora-r', '8', '--eval-every', '5', '--checkpoint-every', '1', '--max-steps', '9']).train)).not.toThrow();
  });

  it('the model and the prepared dataset must be the checkpoint\'s', () => {
    const ckpt = checkpoint(3, {});
    expect(() => checkSameModel(ckpt, 'webtune/demo-tiny-llama')).not.toThrow();
    expect(() => checkSameModel(ckpt, 'meta-llama/Llama-3.2-1B')).toThrow('--resume: the checkpoint was trained on webtune/demo-tiny-llama, not meta-llama/Llama-3.2-1B; give --model webtune/demo-tiny-llama.');
    expect(() => checkSameData(ckpt, 'abcdef0123456789')).not.toThrow();
    expect(() => checkSameData(ckpt, '0000000000000000')).toThrow(/trained on prepared dataset abcdef012345…, and these --data and preparation flags give 000000000000…/);
  });

  it("takes the first run's model, data and preparation from its record unless given again", () => {
    const record: RunRecord = { model: 'demo', data: 'demo', prepare: { maxSeqLength: 128, packing: false } };
    expect(withRecord(parseArgs(['--resume', '--out', 'o']), record)).toMatchObject({ model: 'demo', data: 'demo', prepare: { maxSeqLength: 128, packing: false } });
    // A flag given again wins over the record's.
    expect(withRecord(parseArgs(['--resume', '--out', 'o', '--max-seq-length', '256']), record).prepare).toEqual({ maxSeqLength: 256, packing: false });
    // Other data: its preparation starts from the defaults, not from flags given for the first data.
    const other = withRecord(parseArgs(['--resume', '--out', 'o', '--data', 'x.jsonl']), record);
    expect(other).toMatchObject({ model: 'demo', data: 'x.jsonl', prepare: {} });
    expect(withRecord(parseArgs(['--resume', '--out', 'o']), null).model).toBeUndefined();
  });
});
