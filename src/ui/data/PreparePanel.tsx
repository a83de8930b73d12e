import type { PrepareProgress } from '../../data/index.ts';
import { useDatasetStore } from '../../store/dataset.ts';
import { formatBytes, formatDuration } from '../../util/format.ts';
import { formatCount, formatInt } from '../format.ts';
import { Notice } from '../widgets/Notice.tsx';
import { Section } from '../widgets/Section.tsx';
import { DatasetStats } from './DatasetStats.tsx';

const PHASES: Record<PrepareProgress['phase'], string> = {
  'loading tokenizer': 'Loading the tokenizer',
  detecting: 'Detecting the format',
  reading: 'Reading, tokenizing and packing',
  done: 'Done',
  cached: 'Already prepared',
};

function ProgressView({ p, cancelling }: { p: PrepareProgress | null; cancelling: boolean }) {
  const fraction = p?.fraction ?? null;
  return (
    <div className="progress" data-testid="prepare-progress" data-phase={p?.phase ?? 'starting'}>
      <progress max={1} value={fraction ?? undefined} aria-label="Preparation progress" />
      <p className="small">
        {cancelling ? 'Cancelling…' : p ? PHASES[p.phase] : 'Starting…'}
        {p && p.phase === 'reading' && (
          <>
            {' '}
            — {formatInt(p.recordsRead)}
            {p.totalRecords !== null ? ` of ${formatInt(p.totalRecords)}` : ''} records · {formatCount(Math.round(p.recordsPerSecond))} records/s ·{' '}
            {formatCount(Math.round(p.tokensPerSecond))} tokens/s
            {p.totalBytes !== null && p.bytesRead > 0 ? ` · ${formatBytes(p.bytesRead)} of ${formatBytes(p.totalBytes)}` : ''}
            {p.etaSeconds !== null ? ` · ${formatDuration(p.etaSeconds)} left` : ''}
            {p.skipped > 0 ? ` · ${formatInt(p.skipped)} skipped` : ''}
            {p.resumedShards > 0 ? ` · resumed after ${p.resumedShards} stored shards` : ''}
          </>
        )}
      </p>
    </div>
  );
}

/** The Prepare button, progress with cancel, and the outcome. */
export function PreparePanel() {
  const source = useDatasetStore((s) => s.source);
  const mapping = useDatasetStore((s) => s.mapping);
  const job = useDatasetStore((s) => s.job);
  const result = useDatasetStore((s) => s.result);
  const error = useDatasetStore((s) => s.prepareError);
  const prepare = useDatasetStore((s) => s.prepare);
  const cancel = useDatasetStore((s) => s.cancel);
  if (!source && !job && !result && !error) return null;
  return (
    <Section title="Prepare" testId="prepare-panel">
      <div className="row">
        {source && (
          <button type="button" data-testid="prepare-button" disabled={!mapping || job !== null} onClick={() => void prepare()}>
            Prepare dataset
          </button>
        )}
        {job && (
          <button type="button" className="secondary" data-testid="prepare-cancel" disabled={job.cancelling} onClick={() => void cancel()}>
            Cancel
          </button>
        )}
      </div>
      {job && <ProgressView p={job.progress} cancelling={job.cancelling} />}
      {error &&
        (error.cancelled ? (
          <Notice tone="warn" testId="prepare-error" >
            Cancelled. The shards prepared so far are kept: Prepare again to continue from there.
          </Notice>
        ) : (
          <Notice tone="error" testId="prepare-error">
            {error.message}
          </Notice>
        ))}
      {result && (
        <>
          <Notice tone="ok" testId="prepare-done">
            Prepared {result.name}: {formatInt(result.stats.train.rows)} rows of {result.options.maxSeqLength} tokens, stored in this browser and selected for training.
          </Notice>
          <DatasetStats manifest={result} />
        </>
      )}
    </Section>
  );
}
