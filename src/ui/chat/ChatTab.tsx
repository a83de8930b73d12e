// The Chat tab: talk to the loaded model, with the trained adapter, without it, or both side by
// side; streaming, with a system prompt and sampling settings.
import { effectiveMode, useChatStore, type ChatMode } from '../../store/chat.ts';
import { useModelStore } from '../../store/model.ts';
import { useRunStore } from '../../store/run.ts';
import { Notice } from '../widgets/Notice.tsx';
import { Section } from '../widgets/Section.tsx';
import { Composer } from './Composer.tsx';
import { Conversation } from './Conversation.tsx';
import { SamplingForm } from './SamplingForm.tsx';
import './chat.css';

const MODE_CHOICES: { mode: ChatMode; label: string; help: string }[] = [
  { mode: 'adapter', label: 'With the adapter', help: 'The model with your trained LoRA adapter.' },
  { mode: 'base', label: 'Base model', help: 'The model as loaded, without the adapter.' },
  { mode: 'compare', label: 'Side by side', help: 'Each prompt is answered by the base model, then by the adapter, in two columns.' },
];

/** Base, adapter, or both; without a trained adapter only the base model can answer. */
function ModePicker({ hasAdapter }: { hasAdapter: boolean }) {
  const mode = useChatStore((s) => s.mode);
  const setMode = useChatStore((s) => s.setMode);
  const generating = useChatStore((s) => s.status === 'generating');
  const shown = effectiveMode(mode, hasAdapter);
  return (
    <fieldset className="chat-mode" data-testid="chat-mode" data-mode={shown} disabled={generating}>
      <legend>Answers from</legend>
      {MODE_CHOICES.map((c) => (
        <label key={c.mode} className="chat-mode-choice">
          <input
            type="radio"
            name="chat-mode"
            value={c.mode}
            data-testid={`chat-mode-${c.mode}`}
            checked={shown === c.mode}
            disabled={c.mode !== 'base' && !hasAdapter}
            onChange={() => setMode(c.mode)}
          />{' '}
          {c.label}
          <small>{c.help}</small>
        </label>
      ))}
      {!hasAdapter && (
        <small data-testid="chat-adapter-note">
          No trained adapter yet: replies come from the base model. Train one in the <a href="#train">Train tab</a> (after a reload, restore it there from its checkpoint).
        </small>
      )}
    </fieldset>
  );
}

function SystemPrompt({ disabled }: { disabled: boolean }) {
  const value = useChatStore((s) => s.systemPrompt);
  const set = useChatStore((s) => s.setSystemPrompt);
  return (
    <div className="field">
      <label htmlFor="chat-system">System prompt</label>
      <textarea id="chat-system" data-testid="chat-system" rows={3} placeholder="Optional, e.g. “You are a concise assistant.”" value={value} disabled={disabled} onChange={(e) => set(e.target.value)} />
      <small>Sent first with every reply of this chat.</small>
    </div>
  );
}

const STATUS_WORDS: Record<ChatMode, string> = {
  adapter: 'with the trained adapter',
  base: 'base model',
  compare: 'side by side: base model, then with the adapter (one GPU: one after the other)',
};

export function ChatTab() {
  const model = useModelStore((s) => (s.status === 'loaded' ? s.model : null));
  // The trainer worker keeps the adapter of the last run; the run store says whether one exists.
  const hasAdapter = useRunStore((s) => s.hasAdapter);
  const mode = effectiveMode(useChatStore((s) => s.mode), hasAdapter);
  const generating = useChatStore((s) => s.status === 'generating');
  const error = useChatStore((s) => s.error);

  if (!model) {
    return (
      <Section title="Chat">
        <Notice tone="empty" testId="chat-status">
          No model loaded — load one in the <a href="#model">Model tab</a>
        </Notice>
      </Section>
    );
  }

  return (
    <Section title="Chat" testId="chat-tab">
      <Notice tone="info" testId="chat-status">
        Chatting with {model.name} — {STATUS_WORDS[mode]}
        {generating ? ' · generating…' : ''}
      </Notice>
      <div className="chat-layout">
        <div className="chat-main">
          <Conversation />
          {error && (
            <Notice tone="error" testId="chat-error">
              {error} Try again, or reload the model in the Model tab.
            </Notice>
          )}
          <Composer mode={mode} />
        </div>
        <aside className="chat-side" aria-label="Chat settings">
          <ModePicker hasAdapter={hasAdapter} />
          <SystemPrompt disabled={generating} />
          <SamplingForm disabled={generating} />
        </aside>
      </div>
    </Section>
  );
}
