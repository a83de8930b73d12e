// The Chat tab: talk to the loaded model, with the trained adapter or without it, streaming.
import { useChatStore } from '../../store/chat.ts';
import { useModelStore } from '../../store/model.ts';
import { useRunStore } from '../../store/run.ts';
import { Notice } from '../widgets/Notice.tsx';
import { Section } from '../widgets/Section.tsx';
import { Composer } from './Composer.tsx';
import { Conversation } from './Conversation.tsx';
import { SamplingForm } from './SamplingForm.tsx';
import './chat.css';

function AdapterSwitch({ hasAdapter }: { hasAdapter: boolean }) {
  const useAdapter = useChatStore((s) => s.useAdapter);
  const setUseAdapter = useChatStore((s) => s.setUseAdapter);
  const generating = useChatStore((s) => s.status === 'generating');
  return (
    <div className="field">
      <label className="switch">
        <input
          type="checkbox"
          data-testid="chat-adapter"
          checked={hasAdapter && useAdapter}
          disabled={!hasAdapter || generating}
          onChange={(e) => setUseAdapter(e.target.checked)}
        />{' '}
        Use the trained adapter
      </label>
      <small data-testid="chat-adapter-note">
        {hasAdapter
          ? useAdapter
            ? 'Replies come from the model with your LoRA adapter.'
            : 'Replies come from the base model; turn this on to compare with the adapter.'
          : 'No trained adapter yet: replies come from the base model. Train one in the Train tab.'}
      </small>
    </div>
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

export function ChatTab() {
  const model = useModelStore((s) => (s.status === 'loaded' ? s.model : null));
  // The trainer worker keeps the adapter of the last run; the run store says whether one exists.
  const hasAdapter = useRunStore((s) => s.hasAdapter);
  const useAdapter = useChatStore((s) => s.useAdapter);
  const generating = useChatStore((s) => s.status === 'generating');
  const error = useChatStore((s) => s.error);
  const adapter = hasAdapter && useAdapter;

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
        Chatting with {model.name} — {adapter ? 'with the trained adapter' : 'base model'}
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
          <Composer adapter={adapter} />
        </div>
        <aside className="chat-side" aria-label="Chat settings">
          <AdapterSwitch hasAdapter={hasAdapter} />
          <SystemPrompt disabled={generating} />
          <SamplingForm disabled={generating} />
        </aside>
      </div>
    </Section>
  );
}
