import type { WorkerName } from '../../client/index.ts';
import { useWorkersStore } from '../../store/workers.ts';

const LABEL = { idle: 'not started', running: 'running', crashed: 'stopped' } as const;

function Pill({ name }: { name: WorkerName }) {
  const view = useWorkersStore((s) => s[name]);
  return (
    <span
      className={`pill pill-${view.status}`}
      data-testid={`worker-status-${name}`}
      data-status={view.status}
      title={`${name} worker: ${LABEL[view.status]}`}
    >
      {name}: {LABEL[view.status]}
    </span>
  );
}

export function WorkerStatus() {
  return (
    <div className="worker-status" aria-label="Workers">
      <Pill name="trainer" />
      <Pill name="data" />
    </div>
  );
}
