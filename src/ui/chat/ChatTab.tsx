import { useChatStore } from '../../store/chat.ts';
import { useModelStore } from '../../store/model.ts';
import { Notice } from '../widgets/Notice.tsx';
import { Section } from '../widgets/Section.tsx';

export function ChatTab() {
  const model = useModelStore((s) => (s.status === 'loaded' ? s.model : null));
  const messages = useChatStore((s) => s.messages);

  return (
    <Section title="Chat">
      {model ? (
        messages.length === 0 ? (
          <Notice tone="empty" testId="chat-status">
            Chatting with {model.name} is not available yet.
          </Notice>
        ) : (
          <ol className="chat-log">
            {messages.map((m, i) => (
              <li key={i} className={`msg msg-${m.role}`}>
                <strong>{m.role}:</strong> {m.content}
              </li>
            ))}
          </ol>
        )
      ) : (
        <Notice tone="empty" testId="chat-status">
          No model loaded — load one in the <a href="#model">Model tab</a>
        </Notice>
      )}
    </Section>
  );
}
