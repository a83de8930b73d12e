import { useState, type FormEvent } from 'react';
import { DEFAULT_SETTINGS, useSettingsStore, type Settings } from '../../store/settings.ts';

function SettingsForm() {
  const effective = useSettingsStore((s) => s.effective);
  const fromQuery = useSettingsStore((s) => s.fromQuery);
  const queryProblems = useSettingsStore((s) => s.queryProblems);
  const save = useSettingsStore((s) => s.save);
  const reset = useSettingsStore((s) => s.reset);
  const close = useSettingsStore((s) => s.setPanelOpen);
  const [draft, setDraft] = useState<Settings>(effective);
  const [message, setMessage] = useState<{ tone: 'ok' | 'error'; text: string } | null>(null);

  const onSubmit = (e: FormEvent) => {
    e.preventDefault();
    const r = save(draft);
    setMessage(r.ok ? { tone: 'ok', text: 'Saved.' } : { tone: 'error', text: r.error });
  };
  const onReset = () => {
    reset();
    setDraft({ ...DEFAULT_SETTINGS });
    setMessage({ tone: 'ok', text: 'Back to the defaults.' });
  };
  const field = (key: keyof Settings, label: string, testId: string, help: string) => (
    <div className="field">
      <label htmlFor={`setting-${key}`}>{label}</label>
      <input
        id={`setting-${key}`}
        type="url"
        required
        spellCheck={false}
        value={draft[key]}
        data-testid={testId}
        aria-describedby={`setting-${key}-help`}
        onChange={(e) => setDraft({ ...draft, [key]: e.target.value })}
      />
      <small id={`setting-${key}-help`}>
        {help} Default: <code>{DEFAULT_SETTINGS[key]}</code>.
        {fromQuery[key] && <> Set by the page address for this page only (not saved).</>}
      </small>
    </div>
  );

  return (
    <form onSubmit={onSubmit} aria-label="Settings">
      {field('hubUrl', 'Hub base URL', 'settings-hub', 'Where models and dataset files come from.')}
      {field('datasetsUrl', 'Dataset viewer base URL', 'settings-datasets', 'Used to list dataset splits and rows.')}
      {queryProblems.map((p) => (
        <p key={p} className="notice notice-warn">
          {p}
        </p>
      ))}
      <p className="muted">
        These settings, the GPU memory budget and the training settings are stored in this browser (IndexedDB); the Hugging Face token, when you
        give one, only in its localStorage (Model tab).
      </p>
      <div className="row">
        <button type="submit" data-testid="settings-save">
          Save
        </button>
        <button type="button" className="secondary" onClick={onReset} data-testid="settings-reset">
          Reset to defaults
        </button>
        <button type="button" className="secondary" onClick={() => close(false)}>
          Close
        </button>
        {message && (
          <span className={`inline-msg inline-${message.tone}`} role="status" data-testid="settings-message">
            {message.text}
          </span>
        )}
      </div>
    </form>
  );
}

export function SettingsPanel() {
  const open = useSettingsStore((s) => s.panelOpen);
  if (!open) return null;
  return (
    <section className="section settings" aria-labelledby="settings-title" data-testid="settings-panel">
      <h2 id="settings-title">Settings</h2>
      <SettingsForm />
    </section>
  );
}

export function SettingsButton() {
  const open = useSettingsStore((s) => s.panelOpen);
  const setOpen = useSettingsStore((s) => s.setPanelOpen);
  return (
    <button
      type="button"
      className="icon-button"
      aria-label="Settings"
      aria-expanded={open}
      title="Settings"
      data-testid="settings-open"
      onClick={() => setOpen(!open)}
    >
      <span aria-hidden="true">⚙</span>
    </button>
  );
}
