// The conversation: each message with its role; the reply being generated grows as tokens arrive;
// a finished reply says how it stopped and how fast it came. The two answers of a side-by-side
// turn sit in two columns (base model left, adapter right; stacked on a narrow window).
import { useEffect, useMemo, useRef } from 'react';
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
      data-adapter={String(stats.adapter)}
    >
      {STOP_LABELS[stats.stop]} · {stats.tokens} token{stats.tokens === 1 ? '' : 's'} · prompt {stats.promptTokens} tokens, prefill {stats.prefillSeconds.toFixed(2)} s ·
      decode {stats.decodeTokensPerSecond.toFixed(1)} tokens/s · {stats.adapter ? 'with adapter' : 'base model'}
    </p>
  );
}

const LANE_LABELS = { base: 'Base model', adapter: 'With the adapter' } as const;

function Message({ m, streaming }: { m: ChatMessage; streaming: boolean }) {
  const label = m.lane ? LANE_LABELS[m.lane] : ROLE_LABELS[m.role];
  return (
    <div
      className={`chat-msg chat-msg-${m.role}`}
      data-testid="chat-message"
      data-role={m.role}
      data-lane={m.lane}
      data-tokens={m.tokens ?? undefined}
      data-streaming={streaming ? 'true' : undefined}
      data-skipped={m.skipped ? 'true' : undefined}
      aria-busy={streaming || undefined}
    >
      <div className="chat-role">{label}</div>
      <div className="chat-content" data-testid="chat-content">
        {m.content}
        {streaming && <span className="chat-caret" aria-hidden="true" />}
        {streaming && m.content === '' && <span className="muted">Thinking…</span>}
        {!streaming && m.lane && !m.stats && !m.error && !m.skipped && m.content === '' && <span className="muted">Waiting for the other answer…</span>}
        {m.skipped && <span className="muted">Not generated: stopped before its turn.</span>}
      </div>
      {m.stats && <Stats stats={m.stats} />}
      {m.error && (
        <p className="inline-msg inline-error small" role="alert">
          {m.error}
        </p>
      )}
    </div>
  );
}

/** The conversation as rows: a message, or the two answers of a side-by-side turn. */
type Row = { kind: 'one'; m: ChatMessage } | { kind: 'pair'; base: ChatMessage | null; adapter: ChatMessage | null };

function rowsOf(messages: readonly ChatMessage[]): Row[] {
  const rows: Row[] = [];
  for (const m of messages) {
    const last = rows[rows.length - 1];
    if (!m.lane) rows.push({ kind: 'one', m });
    else if (last?.kind === 'pair' && last[m.lane] === null) last[m.lane] = m;
    else rows.push({ kind: 'pair', base: m.lane === 'base' ? m : null, adapter: m.lane === 'adapter' ? m : null });
  }
  return rows;
}

export function Conversation() {
  const messages = useChatStore((s) => s.messages);
  const streamingId = useChatStore((s) => s.streamingId);
  const systemPrompt = useChatStore((s) => s.systemPrompt.trim());
  const ref = useRef<HTMLOListElement>(null);
  const stick = useRef(true);
  const rows = useMemo(() => rowsOf(messages), [messages]);

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
      {rows.map((r) =>
        r.kind === 'one' ? (
          <li key={r.m.id} className={`chat-row chat-row-${r.m.role}`}>
            <Message m={r.m} streaming={r.m.id === streamingId} />
          </li>
        ) : (
          <li key={(r.base ?? r.adapter)!.id} className="chat-row chat-pair" data-testid="chat-pair">
            {r.base && <Message m={r.base} streaming={r.base.id === streamingId} />}
            {r.adapter && <Message m={r.adapter} streaming={r.adapter.id === streamingId} />}
          </li>
        ),
      )}
    </ol>
  );
}
