// The conversation: each message with its role; the reply being generated grows as tokens arrive;
// a finished reply says how it stopped and how fast it came.
import { useEffect, useRef } from 'react';
import { useChatStore, type ChatMessage, type ReplyStats } from '../../store/chat.ts';

const ROLE_LABELS: Record<ChatMessage['role'], string> = { system: 'System', user: 'You', assistant: 'Model' };

const STOP_LABELS: Record<ReplyStats['stop'], string> = {
  eos: 'end of turn',
  length: 'max new tokens reached',
  aborted: 'stopped',
  context: 'context full',
};

function Stats({ stats }: { stats: ReplyStats }) {
  return (
    <p
      className="chat-stats small muted"
      data-testid="chat-stats"
      data-stop={stats.stop}
      data-tokens={stats.tokens}
      data-prompt-tokens={stats.promptTokens}
      data-prefill-s={stats.prefillSeconds}
      data-decode-tps={stats.decodeTokensPerSecond}
    >
      {STOP_LABELS[stats.stop]} · {stats.tokens} token{stats.tokens === 1 ? '' : 's'} · prompt {stats.promptTokens} tokens, prefill {stats.prefillSeconds.toFixed(2)} s ·
      decode {stats.decodeTokensPerSecond.toFixed(1)} tokens/s · {stats.adapter ? 'with adapter' : 'base model'}
    </p>
  );
}

function Message({ m, streaming }: { m: ChatMessage; streaming: boolean }) {
  return (
    <li
      className={`chat-msg chat-msg-${m.role}`}
      data-testid="chat-message"
      data-role={m.role}
      data-tokens={m.tokens ?? undefined}
      data-streaming={streaming ? 'true' : undefined}
      aria-busy={streaming || undefined}
    >
      <div className="chat-role">{ROLE_LABELS[m.role]}</div>
      <div className="chat-content" data-testid="chat-content">
        {m.content}
        {streaming && <span className="chat-caret" aria-hidden="true" />}
        {streaming && m.content === '' && <span className="muted">Thinking…</span>}
      </div>
      {m.stats && <Stats stats={m.stats} />}
      {m.error && (
        <p className="inline-msg inline-error small" role="alert">
          {m.error}
        </p>
      )}
    </li>
  );
}

export function Conversation() {
  const messages = useChatStore((s) => s.messages);
  const generating = useChatStore((s) => s.status === 'generating');
  const systemPrompt = useChatStore((s) => s.systemPrompt.trim());
  const ref = useRef<HTMLOListElement>(null);
  const stick = useRef(true);

  // Follow the newest text unless the person scrolled up to read.
  useEffect(() => {
    const el = ref.current;
    if (el && stick.current) el.scrollTop = el.scrollHeight;
  }, [messages]);

  if (messages.length === 0) {
    return (
      <p className="chat-empty muted" data-testid="chat-empty">
        Ask something below. {systemPrompt ? 'The system prompt goes first.' : ''}
      </p>
    );
  }
  const last = messages[messages.length - 1];
  return (
    <ol
      ref={ref}
      className="chat-log"
      data-testid="chat-log"
      aria-live="polite"
      onScroll={(e) => {
        const el = e.currentTarget;
        stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
      }}
    >
      {messages.map((m) => (
        <Message key={m.id} m={m} streaming={generating && m === last && m.role === 'assistant'} />
      ))}
    </ol>
  );
}
