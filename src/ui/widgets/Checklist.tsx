import type { ReactNode } from 'react';

export interface ChecklistItem {
  id: string;
  label: string;
  done: boolean;
  /** What to do about it, shown while not done. */
  hint?: ReactNode;
}

export function Checklist({ items, testId }: { items: ChecklistItem[]; testId?: string }) {
  return (
    <ul className="checklist" data-testid={testId}>
      {items.map((item) => (
        <li key={item.id} data-testid={`check-${item.id}`} data-done={item.done} className={item.done ? 'done' : 'todo'}>
          <span className="mark" aria-hidden="true">
            {item.done ? '✓' : '○'}
          </span>
          <span>
            {item.label}
            <span className="visually-hidden">{item.done ? ' (done)' : ' (not yet)'}</span>
            {!item.done && item.hint && <span className="hint"> — {item.hint}</span>}
          </span>
        </li>
      ))}
    </ul>
  );
}
