import { formatBytes, formatDuration } from '../../util/format.ts';
import { clickDownload, useExportStore, type ExportJob } from '../../store/export.ts';
import { Notice } from '../widgets/Notice.tsx';

/** "0.4 s" for quick ones, else "3m 07s". */
const took = (s: number): string => (s < 10 ? `${s.toFixed(1)} s` : formatDuration(s));

const PHASES = { preparing: 'Preparing', writing: 'Writing', finishing: 'Finishing', done: 'Done' } as const;

/** The export in progress: bar, file, MB/s, ETA, Cancel. */
function Progress({ job }: { job: ExportJob }) {
  const cancel = useExportStore((s) => s.cancel);
  const p = job.progress;
  return (
    <div className="export-progress" data-testid="export-progress" data-phase={p?.phase ?? 'preparing'} data-bytes-done={p?.bytesDone ?? 0} data-bytes-total={p?.bytesTotal ?? 0} aria-live="polite">
      <div className="row">
        <strong>
          Exporting the {job.label}: {p ? PHASES[p.phase] : job.status === 'picking' ? 'choosing where to save' : 'reading the weights'}
          {p?.file ? ` ${p.file}` : ''}…
        </strong>
        <button type="button" className="secondary" data-testid="export-cancel" disabled={job.status !== 'running'} onClick={() => void cancel()}>
          Cancel
        </button>
      </div>
      <progress value={p?.bytesDone ?? 0} max={Math.max(1, p?.bytesTotal ?? 1)} aria-label={`Exporting the ${job.label}`} />
      {p && (
        <p className="muted small" data-testid="export-progress-text">
          {formatBytes(p.bytesDone)} of {formatBytes(p.bytesTotal)}
          {p.filesTotal > 1 && ` · file ${Math.min(p.filesDone + 1, p.filesTotal)} of ${p.filesTotal}`}
          {p.bytesPerSecond > 0 && ` · ${(p.bytesPerSecond / 1e6).toFixed(1)} MB/s`}
          {p.etaSeconds !== null && p.etaSeconds > 0 && ` · ${formatDuration(p.etaSeconds)} left`} · {formatDuration(p.elapsedSeconds)} elapsed
        </p>
      )}
    </div>
  );
}

const NEXT_STEP: Record<string, string> = {
  adapter: 'Load it with PEFT on the same base model, or import it into the studio later.',
  merged: 'Load the folder with transformers (AutoModelForCausalLM.from_pretrained), or convert it with llama.cpp.',
  gguf: 'Run it with llama.cpp (llama-cli -m FILE.gguf), LM Studio, or Ollama (ollama create NAME -f Modelfile in that folder).',
  bundle: 'Unzip it on a GPU machine and follow its README.md: accelerate launch train.py (one or many GPUs), or axolotl train axolotl.yaml.',
};

function Result({ job }: { job: ExportJob }) {
  const dismiss = useExportStore((s) => s.dismiss);
  const r = job.result!;
  const where = r.target === 'browser-storage' ? "your browser's downloads" : r.where;
  return (
    <div data-testid="export-result" data-kind={r.kind} data-files={r.files.length} data-bytes={r.bytes} data-target={r.target}>
      <Notice tone="ok" testId="export-status">
        Saved the {job.label} ({formatBytes(r.bytes)}{r.files.length > 1 ? ` in ${r.files.length} files` : ''}) to {where} in {took(r.seconds)}.
      </Notice>
      <ul className="export-files">
        {r.files.map((f) => {
          const link = job.downloads.find((d) => d.name === f.name);
          return (
            <li key={f.name}>
              <code>{r.layout === 'folder' && r.target !== 'browser-storage' ? `${r.name}/${f.name}` : f.name}</code> <span className="muted small">{formatBytes(f.bytes)}</span>
              {link && (
                <button type="button" className="link-button" data-testid={`export-download-${f.name}`} onClick={() => clickDownload(link)}>
                  download again
                </button>
              )}
            </li>
          );
        })}
      </ul>
      {r.notes.length > 0 && (
        <ul className="export-notes" data-testid="export-notes">
          {r.notes.map((n) => (
            <li key={n}>{n}</li>
          ))}
        </ul>
      )}
      <p className="muted small">{NEXT_STEP[r.kind]}</p>
      <button type="button" className="secondary" onClick={dismiss}>
        Done
      </button>
    </div>
  );
}

/** The export job: progress while it runs, then where the files went, or what went wrong. */
export function ExportJobView() {
  const job = useExportStore((s) => s.job);
  const dismiss = useExportStore((s) => s.dismiss);
  if (!job) return null;
  return (
    <div className="export-job" data-testid="export-job" data-status={job.status} data-kind={job.kind}>
      {(job.status === 'running' || job.status === 'picking') && <Progress job={job} />}
      {job.status === 'done' && job.result && <Result job={job} />}
      {(job.status === 'error' || job.status === 'cancelled') && (
        <div data-testid="export-error" data-reason={job.reason ?? ''}>
          <Notice tone={job.status === 'cancelled' ? 'info' : 'error'} testId="export-status">
            {job.error}
          </Notice>
          <button type="button" className="secondary" onClick={dismiss}>
            Dismiss
          </button>
        </div>
      )}
    </div>
  );
}
