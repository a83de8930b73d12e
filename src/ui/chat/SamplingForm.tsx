// Sampling settings of the next reply: transformers' generate() names, with a line each.
import { useState } from 'react';
import type { TemplateId } from '../../data/templates.ts';
import { DEFAULT_SAMPLING, useChatStore, type SamplingSettings } from '../../store/chat.ts';
import { TEMPLATE_LABELS } from '../data/labels.ts';

interface NumberFieldProps {
  id: string;
  label: string;
  value: number;
  min: number;
  max: number;
  step: number;
  integer?: boolean;
  help: string;
  onChange: (n: number) => void;
}

/** A number input that commits only valid values and shows what it holds otherwise. */
function NumberField({ id, label, value, min, max, step, integer, help, onChange }: NumberFieldProps) {
  const [text, setText] = useState<string | null>(null);
  const shown = text ?? String(value);
  const n = Number(shown);
  const valid = shown.trim() !== '' && Number.isFinite(n) && n >= min && n <= max && (!integer || Number.isInteger(n));
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <input
        id={id}
        data-testid={id}
        type="number"
        inputMode="decimal"
        min={min}
        max={max}
        step={step}
        value={shown}
        aria-invalid={!valid}
        onChange={(e) => {
          const t = e.target.value;
          setText(t);
          const v = Number(t);
          if (t.trim() !== '' && Number.isFinite(v) && v >= min && v <= max && (!integer || Number.isInteger(v))) onChange(v);
        }}
        onBlur={() => setText(null)}
      />
      <small className={valid ? undefined : 'inline-error'}>{valid ? help : `Between ${min} and ${max}${integer ? ', a whole number' : ''}.`}</small>
    </div>
  );
}

function SeedField({ value, onChange }: { value: number | null; onChange: (seed: number | null) => void }) {
  const [text, setText] = useState<string | null>(null);
  const shown = text ?? (value === null ? '' : String(value));
  const n = Number(shown);
  const valid = shown.trim() === '' || (Number.isInteger(n) && n >= 0 && n <= 0xffffffff);
  return (
    <div className="field">
      <label htmlFor="chat-seed">Seed</label>
      <input
        id="chat-seed"
        data-testid="chat-seed"
        type="text"
        inputMode="numeric"
        placeholder="random"
        value={shown}
        aria-invalid={!valid}
        onChange={(e) => {
          const t = e.target.value;
          setText(t);
          const v = Number(t);
          if (t.trim() === '') onChange(null);
          else if (Number.isInteger(v) && v >= 0 && v <= 0xffffffff) onChange(v);
        }}
        onBlur={() => setText(null)}
      />
      <small className={valid ? undefined : 'inline-error'}>{valid ? 'Empty: a new seed per reply. Greedy ignores it.' : 'A whole number from 0 to 4294967295, or empty.'}</small>
    </div>
  );
}

const TEMPLATE_IDS = Object.keys(TEMPLATE_LABELS) as Exclude<TemplateId, 'custom'>[];

export function SamplingForm({ disabled }: { disabled: boolean }) {
  const s = useChatStore((st) => st.sampling);
  const set = useChatStore((st) => st.setSampling);
  const patch = (p: Partial<SamplingSettings>) => set(p);
  return (
    <fieldset className="chat-sampling" disabled={disabled} data-testid="chat-sampling">
      <legend>Sampling</legend>
      <NumberField id="chat-temperature" label="Temperature" value={s.temperature} min={0} max={5} step={0.05} help="0: greedy, always the likeliest token (repeatable)." onChange={(temperature) => patch({ temperature })} />
      <NumberField id="chat-top-p" label="Top-p" value={s.topP} min={0.01} max={1} step={0.01} help="Keep the likeliest tokens up to this probability; 1: off." onChange={(topP) => patch({ topP })} />
      <NumberField id="chat-top-k" label="Top-k" value={s.topK} min={0} max={1000} step={1} integer help="Keep only the k likeliest tokens; 0: off." onChange={(topK) => patch({ topK })} />
      <NumberField id="chat-repetition-penalty" label="Repetition penalty" value={s.repetitionPenalty} min={1} max={3} step={0.05} help="Above 1 makes repeating tokens less likely; 1: off." onChange={(repetitionPenalty) => patch({ repetitionPenalty })} />
      <NumberField id="chat-max-tokens" label="Max new tokens" value={s.maxNewTokens} min={1} max={4096} step={1} integer help="The longest reply, in tokens." onChange={(maxNewTokens) => patch({ maxNewTokens })} />
      <SeedField value={s.seed} onChange={(seed) => patch({ seed })} />
      <div className="field">
        <label htmlFor="chat-template">Chat template</label>
        <select id="chat-template" data-testid="chat-template" value={s.template ?? ''} onChange={(e) => patch({ template: (e.target.value || null) as SamplingSettings['template'] })}>
          <option value="">Default (the model&apos;s own, else ChatML)</option>
          {TEMPLATE_IDS.filter((id) => id !== 'model').map((id) => (
            <option key={id} value={id}>
              {TEMPLATE_LABELS[id]}
            </option>
          ))}
        </select>
        <small>Use the template you trained with.</small>
      </div>
      <button type="button" className="secondary" data-testid="chat-sampling-reset" onClick={() => set({ ...DEFAULT_SAMPLING })}>
        Reset to defaults
      </button>
    </fieldset>
  );
}
