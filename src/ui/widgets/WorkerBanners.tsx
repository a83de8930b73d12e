import { useState } from 'react';
import type { WorkerName } from '../../client/index.ts';
import { useWorkersStore } from '../../store/workers.ts';

const TITLE: Record<WorkerName, string> = { trainer: 'Trainer worker', data: 'Data worker' };

function WorkerBanner({ name }: { name: WorkerName }) {
  const problem = useWorkersStore((s) => s[name].problem);
  const restart = useWorkersStore((s) => s.restart);
  const dismiss = useWorkersStore((s) => s.dismiss);
  const [restarting, setRestarting] = useState(false);
  if (!problem) return null;

  const onRestart = async () => {
    setRestarting(true);
    try {
      await restart(name);
    } finally {
      setRestarting(false);
    }
  };
  const what =
    problem.kind === 'crash' ? `${TITLE[name]} stopped` : `${TITLE[name]}: ${problem.method ?? 'a call'}() failed`;

  return (
    <div className="banner banner-error" role="alert" data-testid={`worker-error-${name}`} data-kind={problem.kind}>
      <div className="banner-text">
        <strong>{what}.</strong> <span data-testid={`worker-error-${name}-message`}>{problem.message}</span>
      </div>
      <div className="banner-actions">
        <button type="button" onClick={onRestart} disabled={restarting} data-testid={`worker-restart-${name}`}>
          {restarting ? 'Restarting…' : 'Restart worker'}
        </button>
        {problem.kind === 'call' && (
          <button type="button" className="secondary" onClick={() => dismiss(name)} aria-label={`Dismiss ${TITLE[name]} error`}>
            Dismiss
          </button>
        )}
      </div>
    </div>
  );
}

export function WorkerBanners() {
  return (
    <>
      <WorkerBanner name="trainer" />
      <WorkerBanner name="data" />
    </>
  );
}
