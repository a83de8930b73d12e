import type { ReactNode } from 'react';

type Tone = 'info' | 'empty' | 'warn' | 'error' | 'ok';

/** A line of status: what exists, what is missing, what went wrong. */
export function Notice({ tone = 'info', children, testId }: { tone?: Tone; children: ReactNode; testId?: string }) {
  return (
    <p className={`notice notice-${tone}`} data-testid={testId} role={tone === 'error' ? 'alert' : undefined}>
      {children}
    </p>
  );
}
