import { formatBytes, formatDuration } from '../../util/format.ts';
import { useModelStore } from '../../store/model.ts';

const PHASES = { config: 'Reading config.json', tokenizer: 'Reading the tokenizer', download: 'Downloading', quantize: 'Quantizing', done: 'Done' } as const;

/** The bar, MB/s and ETA of the load in progress, with Cancel. */
export function LoadProgressView() {
  const p = useModelStore((s) => s.progress);
  const loading = useModelStore((s) => s.loading);
  const cancel = useModelStore((s) => s.cancel);
  const downloading = p?.phase === 'download';
  const value = !p ? 0 : downloading ? p.bytesDone : p.tensorsDone;
  const max = !p ? 1 : downloading ? Math.max(1, p.bytesTotal) : Math.max(1, p.tensorsTotal);
  return (
    <div className="load-progress" data-testid="load-progress" data-phase={p?.phase ?? 'config'} aria-live="polite">
      <div className="row">
        <strong>{p ? PHASES[p.phase] : 'Starting'}</strong>
        <button type="button" className="secondary" data-testid="load-cancel" onClick={() => void cancel()}>
          Cancel
        </button>
      </div>
      <progress value={value} max={max} aria-label={`Loading ${loading ?? 'model'}`} />
      <p className="small" data-testid="load-progress-text">
        {p?.message ?? `Loading ${loading ?? ''}…`}
      </p>
      {p && (p.bytesTotal > 0 || p.cachedBytes > 0) && (
        <p className="muted small" data-testid="load-progress-bytes" data-bytes-done={p.bytesDone} data-bytes-total={p.bytesTotal}>
          {formatBytes(p.bytesDone)} of {formatBytes(p.bytesTotal)} downloaded
          {p.bytesPerSecond > 0 && ` · ${(p.bytesPerSecond / 1e6).toFixed(1)} MB/s`}
          {p.etaSeconds !== null && p.etaSeconds > 0 && ` · ${formatDuration(p.etaSeconds)} left`}
          {p.cachedBytes > 0 && ` · ${formatBytes(p.cachedBytes)} from the browser cache`}
        </p>
      )}
    </div>
  );
}
