import { formatBytes } from '../../util/format.ts';
import { useModelStore } from '../../store/model.ts';
import type { CachedFileInfo } from '../../client/index.ts';
import { Notice } from '../widgets/Notice.tsx';

const KIND = { opfs: 'Origin Private File System', 'cache-api': 'Cache API', memory: 'memory only (not kept after a reload)' } as const;

interface RepoGroup {
  repo: string;
  files: CachedFileInfo[];
  bytes: number;
  partial: number;
  revisions: string[];
}

function byRepo(files: CachedFileInfo[]): RepoGroup[] {
  const groups = new Map<string, RepoGroup>();
  for (const f of files) {
    const g = groups.get(f.repo) ?? { repo: f.repo, files: [], bytes: 0, partial: 0, revisions: [] };
    g.files.push(f);
    g.bytes += f.bytes;
    if (!f.complete) g.partial++;
    if (!g.revisions.includes(f.revision)) g.revisions.push(f.revision);
    groups.set(f.repo, g);
  }
  return [...groups.values()];
}

/** What the browser keeps of downloaded models, with sizes and Clear buttons. */
export function CachePanel() {
  const cache = useModelStore((s) => s.cache);
  const error = useModelStore((s) => s.cacheError);
  const clear = useModelStore((s) => s.clearCache);
  const busy = useModelStore((s) => s.status === 'loading');
  if (!cache) return error ? <Notice tone="error">{error}</Notice> : <Notice>Reading the cache…</Notice>;
  const groups = byRepo(cache.files);
  const total = groups.reduce((s, g) => s + g.bytes, 0);
  return (
    <div data-testid="cache-panel" data-kind={cache.kind}>
      {groups.length === 0 ? (
        <Notice tone="empty" testId="cache-empty">
          No cached models
        </Notice>
      ) : (
        <ul className="items" data-testid="cache-list">
          {groups.map((g) => (
            <li key={g.repo} className="item" data-testid="cache-repo" data-repo={g.repo} data-bytes={g.bytes}>
              <div className="item-main">
                <span className="item-title">{g.repo}</span> <span className="badge">{formatBytes(g.bytes)}</span>
                <button type="button" className="secondary" data-testid="cache-clear-repo" disabled={busy} onClick={() => void clear(g.repo)}>
                  Clear
                </button>
              </div>
              <div className="item-meta">
                {g.files.length} files ({g.files.map((f) => f.path).join(', ')})
                {g.partial > 0 && ` · ${g.partial} partly downloaded (a new load resumes it)`} · revision{' '}
                {g.revisions.map((r) => r.slice(0, 10)).join(', ')}
              </div>
            </li>
          ))}
        </ul>
      )}
      <div className="row">
        <span className="muted small" data-testid="cache-usage">
          Model files: {formatBytes(total)} in {KIND[cache.kind]}.
          {cache.usage && ` This site uses ${formatBytes(cache.usage.usage)} of the ${formatBytes(cache.usage.quota)} the browser allows it.`}
        </span>
        {groups.length > 0 && (
          <button type="button" className="secondary" data-testid="cache-clear-all" disabled={busy} onClick={() => void clear()}>
            Clear all
          </button>
        )}
      </div>
      {error && <Notice tone="error">{error}</Notice>}
    </div>
  );
}
