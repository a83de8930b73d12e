import { formatBytes } from '../../util/format.ts';
import { useCatalogStore } from '../../store/catalog.ts';
import { useSettingsStore } from '../../store/settings.ts';
import { formatCount } from '../format.ts';
import { Notice } from '../widgets/Notice.tsx';

function DemoModel() {
  const status = useCatalogStore((s) => s.status);
  const model = useCatalogStore((s) => s.manifest?.model);
  const error = useCatalogStore((s) => s.error);

  if (status === 'idle' || status === 'loading') return <Notice>Reading the demo manifest…</Notice>;
  if (!model) {
    return (
      <Notice tone="warn" testId="demo-missing">
        The offline demo model is not available. {error}
      </Notice>
    );
  }
  const bytes = model.files.reduce((sum, f) => sum + f.size, 0);
  return (
    <ul className="items" data-testid="model-list">
      <li className="item" data-testid="model-demo" data-model-id={model.id}>
        <div className="item-main">
          <span className="item-title">{model.name}</span> <span className="badge">Demo (offline)</span>
        </div>
        <div className="item-meta">
          {formatCount(model.params)} parameters · {model.files.length} files · {formatBytes(bytes)} ·{' '}
          <code>{model.path}</code>
        </div>
      </li>
    </ul>
  );
}

export function ModelList() {
  const hubUrl = useSettingsStore((s) => s.effective.hubUrl);
  return (
    <>
      <DemoModel />
      <p className="muted small">
        Hub models (from <code>{hubUrl}</code>): search and loading are not available yet.
      </p>
    </>
  );
}
