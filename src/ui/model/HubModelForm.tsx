import { useState, type FormEvent, type Ref } from 'react';
import { useGpuStore } from '../../store/gpu.ts';
import { useModelStore } from '../../store/model.ts';
import { useSettingsStore } from '../../store/settings.ts';

/** The token field: saved in this browser only, shown masked, never logged. */
function TokenField() {
  const token = useModelStore((s) => s.token);
  const setToken = useModelStore((s) => s.setToken);
  const hubUrl = useSettingsStore((s) => s.effective.hubUrl);
  const [draft, setDraft] = useState('');
  const save = (e: FormEvent) => {
    e.preventDefault();
    setToken(draft);
    setDraft('');
  };
  return (
    <form className="token-row" onSubmit={save}>
      <div>
        <label htmlFor="hf-token">Hugging Face token (for gated and private models)</label>
        <input
          id="hf-token"
          data-testid="hf-token"
          type="password"
          autoComplete="off"
          spellCheck={false}
          placeholder={token ? 'a token is saved: type a new one to replace it' : 'hf_…'}
          value={draft}
          onChange={(e) => setDraft(e.target.value)}
        />
      </div>
      <button type="submit" data-testid="hf-token-save" disabled={!draft.trim()}>
        Save token
      </button>
      <button type="button" className="secondary" data-testid="hf-token-forget" disabled={!token} onClick={() => setToken('')}>
        Forget
      </button>
      <p className="muted small" data-testid="hf-token-state" data-saved={token ? 'true' : 'false'} style={{ gridColumn: '1 / -1', margin: 0 }}>
        {token ? 'A token is saved in this browser.' : 'No token saved.'} It stays in this browser (localStorage) and is sent only to{' '}
        <code>{hubUrl}</code>.
      </p>
    </form>
  );
}

/** What the form holds; the search above it fills it in. */
export interface HubModelDraft {
  id: string;
  revision: string;
}

/** Any model on the Hub by id, at a branch, tag or commit. */
export function HubModelForm({
  draft,
  onChange,
  loadRef,
}: {
  draft: HubModelDraft;
  onChange: (draft: HubModelDraft) => void;
  loadRef?: Ref<HTMLButtonElement>;
}) {
  const load = useModelStore((s) => s.load);
  const gpuReady = useGpuStore((s) => s.status === 'ready');
  const hubUrl = useSettingsStore((s) => s.effective.hubUrl);
  const { id, revision } = draft;
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (id.trim()) void load({ kind: 'hub', id, revision });
  };
  return (
    <>
      <form className="hub-form" onSubmit={submit}>
        <div>
          <label htmlFor="hub-model-id">Hub model id (from {hubUrl})</label>
          <input
            id="hub-model-id"
            data-testid="hub-model-id"
            placeholder="owner/name, e.g. unsloth/Llama-3.2-1B-Instruct"
            spellCheck={false}
            value={id}
            onChange={(e) => onChange({ id: e.target.value, revision })}
          />
        </div>
        <div>
          <label htmlFor="hub-revision">Revision</label>
          <input id="hub-revision" data-testid="hub-revision" placeholder="main" spellCheck={false} value={revision} onChange={(e) => onChange({ id, revision: e.target.value })} />
        </div>
        <button type="submit" data-testid="hub-model-load" ref={loadRef} disabled={!gpuReady || !id.trim()}>
          Load
        </button>
      </form>
      <TokenField />
    </>
  );
}
