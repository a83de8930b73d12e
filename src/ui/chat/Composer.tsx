// The input box with Send, Stop and New chat. Enter sends; Shift+Enter starts a new line.
import { useState } from 'react';
import { useChatStore, type ChatMode } from '../../store/chat.ts';

export function Composer({ mode }: { mode: ChatMode }) {
  const [text, setText] = useState('');
  const generating = useChatStore((s) => s.status === 'generating');
  const hasMessages = useChatStore((s) => s.messages.length > 0);
  const send = useChatStore((s) => s.send);
  const stop = useChatStore((s) => s.stop);
  const clear = useChatStore((s) => s.clear);
  const canSend = !generating && text.trim() !== '';

  const submit = () => {
    if (!canSend) return;
    void send(text, mode);
    setText('');
  };

  return (
    <form
      className="chat-composer"
      onSubmit={(e) => {
        e.preventDefault();
        submit();
      }}
    >
      <label htmlFor="chat-input" className="visually-hidden">
        Message
      </label>
      <textarea
        id="chat-input"
        data-testid="chat-input"
        rows={3}
        placeholder="Message the model… (Enter sends, Shift+Enter for a new line)"
        value={text}
        onChange={(e) => setText(e.target.value)}
        onKeyDown={(e) => {
          if (e.key === 'Enter' && !e.shiftKey && !e.nativeEvent.isComposing) {
            e.preventDefault();
            submit();
          }
        }}
      />
      <div className="row">
        <button type="submit" data-testid="chat-send" disabled={!canSend}>
          Send
        </button>
        <button type="button" className="secondary" data-testid="chat-stop" disabled={!generating} onClick={() => void stop()}>
          Stop
        </button>
        <button type="button" className="secondary" data-testid="chat-new" disabled={!hasMessages && !generating} onClick={clear} title="Clear the conversation">
          New chat
        </button>
        {mode === 'compare' && <span className="muted small">Two answers per prompt: base model first, then with the adapter.</span>}
      </div>
    </form>
  );
}
