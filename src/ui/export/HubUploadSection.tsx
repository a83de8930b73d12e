import { formatBytes } from '../../util/format.ts';
import { useHubUploadStore } from '../../store/hub-upload.ts';
import { useModelStore } from '../../store/model.ts';
import { Notice } from '../widgets/Notice.tsx';

const PHASES = { checking: 'Checking the token and the repo', preparing: 'Preparing the files', hashing: 'Hashing', uploading: 'Uploading', committing: 'Committing', done: 'Done' } as const;

/** Upload the trained adapter (PEFT files + model card) to a Hub repo with the Model tab's token. */
export function HubUploadSection({ blocked }: { blocked: string | null }) {
  const u = useHubUploadStore();
  const hasToken = useModelStore((s) => s.token !== '');
  const running = u.status === 'running';
  const why = blocked ?? (hasToken ? null : 'Needs a Hugging Face token with the "write" role: enter it in the Model tab.');
  const p = u.progress;
  return (
    <div data-testid="hub-upload" data-status={u.status} data-enabled={why === null}>
      <p className="muted">
        The adapter (<code>adapter_config.json</code>, <code>adapter_model.safetensors</code>) and a model card with the base model, data, settings and
        losses, in one commit to a new or existing model repo. Merged models and GGUFs: export them, then upload with <code>npm run tune -- --push-to-hub</code>.
      </p>
      <div className="field">
        <label htmlFor="hub-upload-repo">Repo</label>
        <input id="hub-upload-repo" data-testid="hub-upload-repo" placeholder="name or owner/name" value={u.repo} disabled={running} onChange={(e) => u.setRepo(e.target.value)} />
      </div>
      <label>
        <input type="checkbox" data-testid="hub-upload-private" checked={u.private} disabled={running} onChange={(e) => u.setPrivate(e.target.checked)} /> Private (a new repo only)
      </label>
      <div className="row export-action">
        <button type="button" data-testid="hub-upload-button" disabled={why !== null || running} aria-describedby="hub-upload-why" onClick={() => void u.upload()}>
          Upload adapter
        </button>
        <span id="hub-upload-why" className="muted small">
          {why ?? ''}
        </span>
      </div>
      {running && (
        <div data-testid="hub-upload-progress">
          <span className="small">
            {p ? PHASES[p.phase] : 'Starting'}
            {p?.file ? ` ${p.file}` : ''}
            {p && p.bytesTotal > 0 ? ` (${formatBytes(p.bytesDone)} of ${formatBytes(p.bytesTotal)})` : ''}
          </span>
          <progress value={p?.bytesDone ?? 0} max={Math.max(1, p?.bytesTotal ?? 1)} aria-label="Uploading to the Hub" />
        </div>
      )}
      {u.status === 'done' && u.result && (
        <Notice tone="ok" testId="hub-upload-status">
          Uploaded {u.result.files.length} files to{' '}
          <a href={u.result.url} target="_blank" rel="noreferrer" data-testid="hub-upload-url">
            {u.result.repo}
          </a>
          {u.result.created ? ' (a new repo)' : ''}.
        </Notice>
      )}
      {u.status === 'error' && (
        <Notice tone="error" testId="hub-upload-status">
          {u.error}
        </Notice>
      )}
    </div>
  );
}
