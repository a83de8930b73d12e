import { useDatasetStore, useSelectedDataset } from '../../store/dataset.ts';
import { formatBytes } from '../../util/format.ts';
import { formatInt } from '../format.ts';
import { Notice } from '../widgets/Notice.tsx';
import { TEMPLATE_LABELS } from './labels.ts';

/** The dataset training will use, in one line. */
export function SelectedDataset() {
  const selected = useSelectedDataset();
  if (!selected) {
    return (
      <Notice tone="empty" testId="dataset-status">
        No dataset prepared
      </Notice>
    );
  }
  return (
    <Notice tone="ok" testId="dataset-status">
      For training: {selected.name} — {formatInt(selected.stats.train.rows)} rows of {selected.options.maxSeqLength} tokens (
      {TEMPLATE_LABELS[selected.options.template as keyof typeof TEMPLATE_LABELS] ?? selected.options.template})
    </Notice>
  );
}

/** Prepared datasets in this browser (IndexedDB, through the data worker). */
export function PreparedList() {
  const prepared = useDatasetStore((s) => s.prepared);
  const selected = useDatasetStore((s) => s.selected);
  const select = useDatasetStore((s) => s.select);
  const remove = useDatasetStore((s) => s.remove);
  const resume = useDatasetStore((s) => s.continuePrepared);
  const busy = useDatasetStore((s) => s.job !== null);
  const list = prepared.value ?? [];
  if (prepared.status === 'error') return <Notice tone="error">The prepared datasets could not be read: {prepared.error}</Notice>;
  if (list.length === 0) return prepared.status === 'ready' ? <p className="muted small">Nothing prepared in this browser yet.</p> : null;
  return (
    <table className="table" data-testid="prepared-list">
      <caption className="visually-hidden">Prepared datasets</caption>
      <thead>
        <tr>
          <th scope="col">Dataset</th>
          <th scope="col">Template</th>
          <th scope="col" className="num">
            Examples
          </th>
          <th scope="col" className="num">
            Rows
          </th>
          <th scope="col" className="num">
            Stored
          </th>
          <th scope="col">
            <span className="visually-hidden">Actions</span>
          </th>
        </tr>
      </thead>
      <tbody>
        {list.map((m) => (
          <tr key={m.fingerprint} data-testid="prepared-item" data-fingerprint={m.fingerprint} data-status={m.status} data-selected={m.fingerprint === selected}>
            <td>
              {m.name} <span className="muted small">{new Date(m.updatedAt).toLocaleString()}</span>
              {m.status === 'partial' && <span className="badge">partial: {m.shards.length} shards stored</span>}
            </td>
            <td>
              {TEMPLATE_LABELS[m.options.template as keyof typeof TEMPLATE_LABELS] ?? m.options.template}, {m.options.maxSeqLength}
            </td>
            <td className="num">{formatInt(m.stats.examples)}</td>
            <td className="num">{formatInt(m.stats.train.rows)}</td>
            <td className="num">{formatBytes(m.stats.bytes)}</td>
            <td className="actions">
              {m.status === 'partial' && (
                <button
                  type="button"
                  className="secondary"
                  data-testid="prepared-continue"
                  disabled={busy}
                  title={m.source.kind === 'file' ? `Choose ${m.name} again to continue` : undefined}
                  onClick={() => void resume(m.fingerprint)}
                >
                  Continue
                </button>
              )}
              {m.status === 'complete' &&
                (m.fingerprint === selected ? (
                  <span className="badge">selected</span>
                ) : (
                  <button type="button" className="secondary" data-testid="prepared-select" onClick={() => select(m.fingerprint)}>
                    Use for training
                  </button>
                ))}{' '}
              <button type="button" className="secondary" data-testid="prepared-delete" aria-label={`Delete ${m.name}`} onClick={() => void remove(m.fingerprint)}>
                Delete
              </button>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
