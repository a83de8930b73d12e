import { useEffect, useState, type ReactNode } from 'react';
import { effectiveSettings, useRunStore, type TrainSettings } from '../../store/run.ts';

type TargetName = TrainSettings['targets'][number];

/** The seven projections LoRA can wrap, in the order PEFT lists them. */
const TARGETS: readonly TargetName[] = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

function Field({ id, label, help, disabled, children }: { id: string; label: string; help: ReactNode; disabled?: boolean; children: ReactNode }) {
  return (
    <div className={`field${disabled ? ' disabled' : ''}`}>
      <label htmlFor={id}>{label}</label>
      {children}
      <small>{help}</small>
    </div>
  );
}

/** A number typed as text, committed when it parses and lies in [min, max]; shows the stored
 *  value again when it changes from elsewhere (reset). */
function NumberInput({ id, value, min, max, integer, disabled, onChange }: { id: string; value: number; min: number; max: number; integer?: boolean; disabled?: boolean; onChange: (n: number) => void }) {
  const [text, setText] = useState(String(value));
  useEffect(() => {
    setText((t) => (Number(t) === value ? t : String(value)));
  }, [value]);
  const n = Number(text);
  const valid = text.trim() !== '' && Number.isFinite(n) && n >= min && n <= max && (!integer || Number.isInteger(n));
  return (
    <input
      id={id}
      data-testid={id}
      type="text"
      inputMode={integer ? 'numeric' : 'decimal'}
      value={text}
      disabled={disabled}
      aria-invalid={!valid}
      onChange={(e) => {
        const t = e.target.value;
        setText(t);
        const v = Number(t);
        if (t.trim() !== '' && Number.isFinite(v) && v >= min && v <= max && (!integer || Number.isInteger(v))) onChange(v);
      }}
    />
  );
}

/** The hyperparameters, transformers / PEFT names, the seed recipe as defaults. */
export function SettingsForm({ disabled }: { disabled: boolean }) {
  const defaults = useRunStore((s) => s.defaults);
  const overrides = useRunStore((s) => s.overrides);
  const length = useRunStore((s) => s.length);
  const setSetting = useRunStore((s) => s.setSetting);
  const setLength = useRunStore((s) => s.setLength);
  const reset = useRunStore((s) => s.resetSettings);
  const s = effectiveSettings({ defaults, overrides, length });
  if (!s) return <p className="muted">Reading the default settings…</p>;

  const num = <K extends keyof TrainSettings>(key: K, id: string, min: number, max: number, integer = false) => (
    <NumberInput id={id} value={s[key] as number} min={min} max={max} integer={integer} disabled={disabled} onChange={(v) => setSetting(key, v as TrainSettings[K])} />
  );

  return (
    <div data-testid="train-settings">
      <div className="train-form">
        <Field id="train-r" label="r" help="LoRA rank: the size of the low-rank update; higher learns more, costs more memory.">
          {num('loraR', 'train-r', 1, 1024, true)}
        </Field>
        <Field id="train-alpha" label="lora_alpha" help="Scale of the update: alpha / r (or alpha / √r with rsLoRA).">
          {num('loraAlpha', 'train-alpha', 0.001, 4096)}
        </Field>
        <Field id="train-rslora" label="use_rslora" help="Rank-stabilized scaling (alpha / √r), so a higher r does not shrink the update.">
          <label className="switch">
            <input id="train-rslora" data-testid="train-rslora" type="checkbox" checked={s.rslora} disabled={disabled} onChange={(e) => setSetting('rslora', e.target.checked)} /> on
          </label>
        </Field>
        <Field id="train-dropout" label="lora_dropout" help="Dropout on the LoRA input: not yet supported by the engine (0).">
          <input id="train-dropout" data-testid="train-dropout" type="text" value="0" disabled readOnly title="not yet" />
        </Field>
        <fieldset className="field" disabled={disabled}>
          <label>target_modules</label>
          <div className="targets" data-testid="train-targets">
            {TARGETS.map((t) => (
              <label key={t} className="switch">
                <input
                  type="checkbox"
                  data-testid={`train-target-${t}`}
                  checked={s.targets.includes(t)}
                  onChange={(e) => {
                    const next = e.target.checked ? TARGETS.filter((x) => x === t || s.targets.includes(x)) : s.targets.filter((x) => x !== t);
                    if (next.length > 0) setSetting('targets', next);
                  }}
                />{' '}
                {t}
              </label>
            ))}
          </div>
          <small>The linear layers that get an adapter (at least one); all seven is the recipe.</small>
        </fieldset>
        <Field id="train-lr" label="learning_rate" help="Peak step size of AdamW; 2e-4 to 3e-4 is usual for LoRA.">
          {num('learningRate', 'train-lr', 0, 1)}
        </Field>
        <Field id="train-schedule" label="lr_scheduler_type" help="How the learning rate moves after warmup.">
          <select id="train-schedule" data-testid="train-schedule" value={s.schedule} disabled={disabled} onChange={(e) => setSetting('schedule', e.target.value as TrainSettings['schedule'])}>
            <option value="linear">linear (down to 0)</option>
            <option value="cosine">cosine (down to 0)</option>
            <option value="constant">constant</option>
          </select>
        </Field>
        <Field id="train-warmup" label="warmup_steps" help="Steps over which the learning rate rises from 0 to its peak.">
          {num('warmupSteps', 'train-warmup', 0, 1e6, true)}
        </Field>
        <Field id="train-batch" label="per_device_train_batch_size" help="Packed rows per micro-batch; more uses more GPU memory.">
          {num('batchSize', 'train-batch', 1, 1024, true)}
        </Field>
        <Field id="train-accum" label="gradient_accumulation_steps" help="Micro-batches summed per optimizer step (effective batch = batch × this).">
          {num('gradAccum', 'train-accum', 1, 1024, true)}
        </Field>
        <div className="field">
          <label htmlFor="train-length">Run length</label>
          <select id="train-length" data-testid="train-length" value={length} disabled={disabled} onChange={(e) => setLength(e.target.value as 'epochs' | 'maxSteps')}>
            <option value="epochs">num_train_epochs</option>
            <option value="maxSteps">max_steps</option>
          </select>
          {length === 'epochs' ? (
            <NumberInput id="train-epochs" value={s.epochs ?? 1} min={1} max={1000} integer disabled={disabled} onChange={(v) => setSetting('epochs', v)} />
          ) : (
            <NumberInput id="train-max-steps" value={s.maxSteps ?? 100} min={1} max={1e7} integer disabled={disabled} onChange={(v) => setSetting('maxSteps', v)} />
          )}
          <small>{length === 'epochs' ? 'Passes over the training rows.' : 'Optimizer steps, whatever the dataset size (wins over epochs).'}</small>
        </div>
        <Field id="train-optim" label="optim" help="AdamW with 8-bit states saves memory; 32-bit is the reference.">
          <select id="train-optim" data-testid="train-optim" value={s.optimizer} disabled={disabled} onChange={(e) => setSetting('optimizer', e.target.value as TrainSettings['optimizer'])}>
            <option value="adamw_8bit">adamw_8bit</option>
            <option value="adamw">adamw_32bit</option>
          </select>
        </Field>
        <Field id="train-wd" label="weight_decay" help="Decoupled decay pulling the adapter weights toward 0 each step.">
          {num('weightDecay', 'train-wd', 0, 1)}
        </Field>
        <Field id="train-clip" label="max_grad_norm" help="Gradients are scaled down to this norm (0: no clipping).">
          {num('maxGradNorm', 'train-clip', 0, 1e6)}
        </Field>
        <Field id="train-seed" label="seed" help="Seeds the adapter's initial weights, so a run can be repeated.">
          {num('seed', 'train-seed', 0, 2 ** 31 - 1, true)}
        </Field>
        <Field id="train-checkpointing" label="gradient_checkpointing" help="Not yet: the engine keeps all activations." disabled>
          <input id="train-checkpointing" type="checkbox" disabled checked={false} readOnly title="not yet" />
        </Field>
        <Field id="train-eval" label="eval_steps / save_steps" help="Not yet: no evaluation loss or checkpoints during a run." disabled>
          <input id="train-eval" type="text" disabled value="not yet" readOnly />
        </Field>
      </div>
      <button type="button" className="secondary" data-testid="train-reset" disabled={disabled} onClick={reset}>
        Reset to the recipe
      </button>
    </div>
  );
}
