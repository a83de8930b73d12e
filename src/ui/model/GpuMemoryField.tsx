import { useState, type FormEvent } from 'react';
import { useGpuStore } from '../../store/gpu.ts';
import { formatGb, parseGpuMemoryGb } from './gpu-budget.ts';
import { useGpuBudget } from './useMemoryFit.ts';

/** "GPU memory (GB)": what the Models list judges plans against (WebGPU cannot tell). */
export function GpuMemoryField() {
  const budget = useGpuBudget();
  const setMemoryGb = useGpuStore((s) => s.setMemoryGb);
  const [draft, setDraft] = useState('');
  const [error, setError] = useState<string | null>(null);

  const save = (e: FormEvent) => {
    e.preventDefault();
    const parsed = parseGpuMemoryGb(draft);
    if (!parsed.ok) return setError(parsed.error);
    setError(null);
    setDraft('');
    setMemoryGb(parsed.gb);
  };
  const forget = () => {
    setError(null);
    setDraft('');
    setMemoryGb(null);
  };

  return (
    <form className="gpu-memory" onSubmit={save} aria-label="GPU memory" noValidate>
      <div>
        <label htmlFor="gpu-memory-gb">GPU memory (GB)</label>
        <input
          id="gpu-memory-gb"
          data-testid="gpu-memory-input"
          type="number"
          inputMode="decimal"
          min={0.25}
          step="any"
          placeholder={String(budget.gb)}
          value={draft}
          aria-describedby="gpu-memory-note"
          aria-invalid={error ? true : undefined}
          onChange={(e) => setDraft(e.target.value)}
        />
      </div>
      <button type="submit" data-testid="gpu-memory-save" disabled={!draft.trim()}>
        Save
      </button>
      <button type="button" className="secondary" data-testid="gpu-memory-forget" title="Go back to the detected or assumed size" disabled={budget.source !== 'set'} onClick={forget}>
        Forget
      </button>
      <p id="gpu-memory-note" className="muted small gpu-memory-note" data-testid="gpu-memory-budget" data-bytes={budget.bytes} data-source={budget.source}>
        Planning against <strong>{formatGb(budget.gb)}</strong>: {budget.note}
      </p>
      {error && (
        <p className="inline-msg inline-error gpu-memory-note" role="alert" data-testid="gpu-memory-error">
          {error}
        </p>
      )}
    </form>
  );
}
