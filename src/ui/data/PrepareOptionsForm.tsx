import { useQuery } from '@tanstack/react-query';
import { data } from '../../client/index.ts';
import type { TemplateId } from '../../data/index.ts';
import { tokenizerSource, useDatasetStore, useTokenizerKey } from '../../store/dataset.ts';
import { TEMPLATE_LABELS } from './labels.ts';

function NumberField({ id, label, value, min, max, help, onChange }: { id: string; label: string; value: number; min: number; max: number; help?: string; onChange: (n: number) => void }) {
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <input
        id={id}
        data-testid={id}
        type="number"
        min={min}
        max={max}
        value={value}
        onChange={(e) => {
          const n = Number(e.target.value);
          if (e.target.value !== '' && Number.isFinite(n) && n >= min && n <= max) onChange(n);
        }}
      />
      {help && <small>{help}</small>}
    </div>
  );
}

/** Template, masking, length, packing, validation split, seed. */
export function PrepareOptionsForm() {
  const settings = useDatasetStore((s) => s.settings);
  const set = useDatasetStore((s) => s.setSettings);
  const tokenizerKey = useTokenizerKey();
  const facts = useQuery({
    queryKey: ['tokenizer-facts', tokenizerKey],
    queryFn: () => data.tokenizerFacts(tokenizerSource()),
    enabled: tokenizerKey !== null,
  });
  const hasOwn = facts.data?.hasChatTemplate ?? false;

  return (
    <div className="options" data-testid="prepare-options">
      <p className="muted small">
        Tokenizer: <code>{facts.data?.id ?? tokenizerKey ?? '…'}</code> (the loaded Hub model&apos;s, else the demo model&apos;s)
        {facts.isError && <span className="inline-msg inline-error"> — {(facts.error as Error).message}</span>}
      </p>
      <div className="row fields">
        <div className="field">
          <label htmlFor="opt-template">Chat template</label>
          <select id="opt-template" data-testid="opt-template" value={settings.template} onChange={(e) => set({ template: e.target.value as TemplateId })}>
            {(Object.keys(TEMPLATE_LABELS) as (keyof typeof TEMPLATE_LABELS)[]).map((id) => (
              <option key={id} value={id} disabled={id === 'model' && !hasOwn}>
                {TEMPLATE_LABELS[id]}
                {id === 'model' && !hasOwn ? ' (this tokenizer has none)' : ''}
              </option>
            ))}
          </select>
        </div>
        <NumberField id="opt-max-length" label="Max length (tokens)" value={settings.maxSeqLength} min={16} max={131072} onChange={(maxSeqLength) => set({ maxSeqLength })} />
        <div className="field">
          <label htmlFor="opt-overflow">Longer examples</label>
          <select id="opt-overflow" value={settings.overflow} onChange={(e) => set({ overflow: e.target.value as 'truncate' | 'drop' })}>
            <option value="truncate">are cut to the max length</option>
            <option value="drop">are skipped</option>
          </select>
        </div>
      </div>
      <div className="row">
        <label className="switch">
          <input type="checkbox" data-testid="opt-responses-only" checked={settings.trainOnResponsesOnly} onChange={(e) => set({ trainOnResponsesOnly: e.target.checked })} /> Train on
          responses only
        </label>
        <label className="switch">
          <input type="checkbox" data-testid="opt-packing" checked={settings.packing} onChange={(e) => set({ packing: e.target.checked })} /> Pack several examples per row
        </label>
      </div>
      <div className="row fields">
        <NumberField id="opt-validation" label="Validation split (%)" value={settings.validationPercent} min={0} max={50} onChange={(validationPercent) => set({ validationPercent })} />
        <NumberField id="opt-seed" label="Seed" value={settings.seed} min={0} max={4294967295} onChange={(seed) => set({ seed })} />
      </div>
    </div>
  );
}
