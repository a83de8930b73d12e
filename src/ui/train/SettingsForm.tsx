// Every TrainSettings field, with transformers / PEFT names, the seed recipe (from the trainer
// worker) as defaults, and one line each on what it does. Changes are kept in IndexedDB.
import type { ReactNode } from 'react';
import { effectiveSettings, plannedSteps, useRunStore, type TrainSettings } from '../../store/run.ts';
import { formatInt } from '../format.ts';
import { Field, Group, NumberInput } from './fields.tsx';

type TargetName = TrainSettings['targets'][number];

/** The seven projections LoRA can wrap, in the order PEFT lists them. */
const TARGETS: readonly TargetName[] = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

interface FormProps {
  disabled: boolean;
  /** Rows of the selected dataset's splits; null without one. */
  trainRows: number | null;
  validationRows: number | null;
}

export function SettingsForm({ disabled, trainRows, validationRows }: FormProps) {
  const defaults = useRunStore((s) => s.defaults);
  const overrides = useRunStore((s) => s.overrides);
  const length = useRunStore((s) => s.length);
  const warmup = useRunStore((s) => s.warmup);
  const setSetting = useRunStore((s) => s.setSetting);
  const setLength = useRunStore((s) => s.setLength);
  const setWarmup = useRunStore((s) => s.setWarmup);
  const reset = useRunStore((s) => s.resetSettings);
  const s = effectiveSettings({ defaults, overrides, length, warmup });
  if (!s) return <p className="muted">Reading the default settings…</p>;

  const num = <K extends keyof TrainSettings>(key: K, id: string, min: number, max: number, integer = false, fallback = 0) => (
    <NumberInput id={id} value={(s[key] as number | undefined) ?? fallback} min={min} max={max} integer={integer} disabled={disabled} onChange={(v) => setSetting(key, v as TrainSettings[K])} />
  );
  const steps = trainRows !== null ? plannedSteps(s, trainRows) : null;
  const noValidation = validationRows === 0;
  const evalEvery = s.evalEvery ?? 0;

  return (
    <div data-testid="train-settings">
      <Group title="Adapter (LoRA)">
        <Field id="train-r" label="Rank" name="r" help="Size of the low-rank update: higher learns more and costs more memory.">
          {num('loraR', 'train-r', 1, 1024, true)}
        </Field>
        <Field id="train-alpha" label="Alpha" name="lora_alpha" help="Scale of the update: alpha / r (alpha / √r with rsLoRA).">
          {num('loraAlpha', 'train-alpha', 0.001, 4096)}
        </Field>
        <Field id="train-rslora" label="Rank-stabilized" name="use_rslora" help="Scales by alpha / √r, so a higher r does not shrink the update.">
          <label className="switch">
            <input id="train-rslora" data-testid="train-rslora" type="checkbox" checked={s.rslora} disabled={disabled} onChange={(e) => setSetting('rslora', e.target.checked)} /> on
          </label>
        </Field>
        <Field id="train-dropout" label="Dropout" name="lora_dropout" help="Drops this fraction of the adapter's inputs in training (0: off); helps against overfitting small data.">
          {num('loraDropout', 'train-dropout', 0, 0.9)}
        </Field>
        <TargetsField targets={s.targets} disabled={disabled} onChange={(t) => setSetting('targets', t)} />
      </Group>

      <Group title="Optimizer and schedule">
        <Field id="train-lr" label="Learning rate" name="learning_rate" help="Peak step size of AdamW; 2e-4 to 3e-4 is usual for LoRA.">
          {num('learningRate', 'train-lr', 0, 1)}
        </Field>
        <Field id="train-schedule" label="Schedule" name="lr_scheduler_type" help="How the learning rate moves after warmup.">
          <select id="train-schedule" data-testid="train-schedule" value={s.schedule} disabled={disabled} onChange={(e) => setSetting('schedule', e.target.value as TrainSettings['schedule'])}>
            <option value="linear">linear (down to 0)</option>
            <option value="cosine">cosine (down to 0)</option>
            <option value="constant">constant</option>
          </select>
        </Field>
        <Field
          id={warmup === 'steps' ? 'train-warmup' : 'train-warmup-ratio'}
          label="Warmup"
          name={warmup === 'steps' ? 'warmup_steps' : 'warmup_ratio'}
          help={warmup === 'steps' ? 'Steps over which the learning rate rises from 0 to its peak.' : 'The same, as a fraction of all steps (rounded up).'}
        >
          <div className="field-pair">
            <select aria-label="Warmup as" data-testid="train-warmup-kind" value={warmup} disabled={disabled} onChange={(e) => setWarmup(e.target.value as 'steps' | 'ratio')}>
              <option value="steps">steps</option>
              <option value="ratio">ratio</option>
            </select>
            {warmup === 'steps' ? num('warmupSteps', 'train-warmup', 0, 1e6, true) : num('warmupRatio', 'train-warmup-ratio', 0, 1, false, 0.03)}
          </div>
        </Field>
        <Field id="train-optim" label="Optimizer" name="optim" help="AdamW with 8-bit states saves memory; 32-bit is the reference.">
          <select id="train-optim" data-testid="train-optim" value={s.optimizer} disabled={disabled} onChange={(e) => setSetting('optimizer', e.target.value as TrainSettings['optimizer'])}>
            <option value="adamw_8bit">adamw_8bit</option>
            <option value="adamw">adamw_32bit</option>
          </select>
        </Field>
        <Field id="train-min8bit" label="8-bit from size" name="min_8bit_size" help="With adamw_8bit, tensors smaller than this keep 32-bit states (bitsandbytes' default 4096)." disabled={s.optimizer !== 'adamw_8bit'}>
          <NumberInput id="train-min8bit" value={s.min8bitSize ?? 4096} min={0} max={1e9} integer disabled={disabled || s.optimizer !== 'adamw_8bit'} onChange={(v) => setSetting('min8bitSize', v)} />
        </Field>
        <Field id="train-wd" label="Weight decay" name="weight_decay" help="Decoupled decay pulling the adapter weights toward 0 each step.">
          {num('weightDecay', 'train-wd', 0, 1)}
        </Field>
        <Field id="train-clip" label="Gradient clipping" name="max_grad_norm" help="Gradients are scaled down to this norm (0: no clipping).">
          {num('maxGradNorm', 'train-clip', 0, 1e6)}
        </Field>
      </Group>

      <Group title="Batches and length">
        <Field id="train-batch" label="Batch size" name="per_device_train_batch_size" help="Packed rows per micro-batch; more uses more GPU memory.">
          {num('batchSize', 'train-batch', 1, 1024, true)}
        </Field>
        <Field id="train-accum" label="Accumulation" name="gradient_accumulation_steps" help={`Micro-batches summed per step: ${s.batchSize * s.gradAccum} rows per optimizer step.`}>
          {num('gradAccum', 'train-accum', 1, 1024, true)}
        </Field>
        <Field
          id={length === 'epochs' ? 'train-epochs' : 'train-max-steps'}
          label="Run length"
          name={length === 'epochs' ? 'num_train_epochs' : 'max_steps'}
          help={<RunLengthHelp length={length} steps={steps} />}
        >
          <div className="field-pair">
            <select aria-label="Run length in" data-testid="train-length" value={length} disabled={disabled} onChange={(e) => setLength(e.target.value as 'epochs' | 'maxSteps')}>
              <option value="epochs">epochs</option>
              <option value="maxSteps">steps</option>
            </select>
            {length === 'epochs' ? num('epochs', 'train-epochs', 1, 1000, true, 1) : num('maxSteps', 'train-max-steps', 1, 1e7, true, 100)}
          </div>
        </Field>
      </Group>

      <Group title="Evaluation and checkpoints">
        <Field
          id="train-eval-every"
          label="Evaluate every"
          name="eval_steps"
          help={noValidation ? 'The selected dataset has no validation split: set one in the Data tab to get an eval loss.' : 'Steps between eval losses on the validation split (0: only at the end).'}
        >
          {num('evalEvery', 'train-eval-every', 0, 1e6, true)}
        </Field>
        <Field
          id="train-patience"
          label="Early-stopping patience"
          name="early_stopping_patience"
          help={evalEvery === 0 && (s.earlyStoppingPatience ?? 0) > 0 ? 'Needs evals during the run: set “Evaluate every” above 0.' : 'Stop after this many evals in a row without a lower eval loss (0: never).'}
        >
          {num('earlyStoppingPatience', 'train-patience', 0, 1000, true)}
        </Field>
        <Field id="train-checkpoint-every" label="Checkpoint every" name="save_steps" help="Steps between checkpoints in this browser's storage (0: only on pause, stop and at the end). A reload resumes from the newest.">
          {num('checkpointEvery', 'train-checkpoint-every', 0, 1e6, true)}
        </Field>
        <Field id="train-max-skipped" label="Give up after" name="max_skipped_in_a_row" help="Non-finite steps in a row before the run stops as diverged.">
          <NumberInput id="train-max-skipped" value={s.maxSkippedInARow ?? 5} min={1} max={1000} integer disabled={disabled} onChange={(v) => setSetting('maxSkippedInARow', v)} />
        </Field>
      </Group>

      <Group title="Reproducibility and memory">
        <Field id="train-seed" label="Seed" name="seed" help="Seeds the adapter's first weights and the dropout masks, so a run can be repeated.">
          {num('seed', 'train-seed', 0, 2 ** 31 - 1, true)}
        </Field>
        <Field id="train-grad-ckpt" label="Gradient checkpointing" name="gradient_checkpointing" help="Always on: each layer is recomputed in the backward, so only one layer's activations are kept.">
          <input id="train-grad-ckpt" type="checkbox" checked readOnly disabled />
        </Field>
        <Field id="train-packing" label="Packing and max length" name="packing" help="Set when the data is prepared (Data tab): they shape the rows.">
          <span className="muted small">see the Data tab</span>
        </Field>
      </Group>

      <button type="button" className="secondary" data-testid="train-reset" disabled={disabled} onClick={reset}>
        Reset to the recipe
      </button>
    </div>
  );
}

function RunLengthHelp({ length, steps }: { length: 'epochs' | 'maxSteps'; steps: number | null }): ReactNode {
  const what = length === 'epochs' ? 'Passes over the training rows.' : 'Optimizer steps, whatever the dataset size.';
  return steps === null ? what : `${what} ${formatInt(steps)} step${steps === 1 ? '' : 's'} with the selected dataset.`;
}

function TargetsField({ targets, disabled, onChange }: { targets: readonly TargetName[]; disabled: boolean; onChange: (t: TargetName[]) => void }) {
  return (
    <fieldset className="field train-targets-field" disabled={disabled}>
      <legend>
        Target modules<code className="field-name">target_modules</code>
      </legend>
      <div className="targets" data-testid="train-targets">
        {TARGETS.map((t) => (
          <label key={t} className="switch">
            <input
              type="checkbox"
              data-testid={`train-target-${t}`}
              checked={targets.includes(t)}
              onChange={(e) => {
                const next = e.target.checked ? TARGETS.filter((x) => x === t || targets.includes(x)) : targets.filter((x) => x !== t);
                if (next.length > 0) onChange(next);
              }}
            />{' '}
            {t}
          </label>
        ))}
      </div>
      <small>The linear layers that get an adapter (at least one); all seven is the recipe.</small>
    </fieldset>
  );
}
