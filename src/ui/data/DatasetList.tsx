import { formatBytes } from '../../util/format.ts';
import { useCatalogStore } from '../../store/catalog.ts';
import { useDatasetStore } from '../../store/dataset.ts';
import { formatInt } from '../format.ts';
import { Notice } from '../widgets/Notice.tsx';

export function DatasetList() {
  const status = useCatalogStore((s) => s.status);
  const datasets = useCatalogStore((s) => s.manifest?.datasets);
  const baseUrl = useCatalogStore((s) => s.baseUrl);
  const error = useCatalogStore((s) => s.error);
  const choose = useDatasetStore((s) => s.chooseSource);

  if (status === 'idle' || status === 'loading') return <Notice>Reading the demo manifest…</Notice>;
  if (!datasets) {
    return (
      <Notice tone="warn" testId="demo-missing">
        The offline demo datasets are not available. {error}
      </Notice>
    );
  }
  if (datasets.length === 0) return <Notice tone="empty">The demo has no datasets.</Notice>;
  return (
    <table className="table" data-testid="dataset-list">
      <caption className="visually-hidden">Demo datasets</caption>
      <thead>
        <tr>
          <th scope="col">Name</th>
          <th scope="col">Format</th>
          <th scope="col" className="num">
            Rows
          </th>
          <th scope="col" className="num">
            Size
          </th>
          <th scope="col">Source</th>
          <th scope="col">
            <span className="visually-hidden">Use</span>
          </th>
        </tr>
      </thead>
      <tbody>
        {datasets.map((d) => (
          <tr key={d.id} data-testid="dataset-demo" data-dataset-id={d.id}>
            <td>{d.name}</td>
            <td>{d.format}</td>
            <td className="num">{formatInt(d.rows)}</td>
            <td className="num">{formatBytes(d.bytes)}</td>
            <td>
              <span className="badge">Demo (offline)</span>
            </td>
            <td>
              <button
                type="button"
                className="secondary"
                data-testid="demo-use"
                onClick={() => void choose({ kind: 'demo', id: d.id, name: d.name, url: new URL(d.path, baseUrl).href })}
              >
                Use
              </button>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
