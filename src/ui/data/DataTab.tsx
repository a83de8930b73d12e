import { useDatasetStore } from '../../store/dataset.ts';
import { useSettingsStore } from '../../store/settings.ts';
import { formatInt } from '../format.ts';
import { Notice } from '../widgets/Notice.tsx';
import { Section } from '../widgets/Section.tsx';
import { DatasetList } from './DatasetList.tsx';

function PreparedDataset() {
  const status = useDatasetStore((s) => s.status);
  const dataset = useDatasetStore((s) => s.dataset);
  const error = useDatasetStore((s) => s.error);
  if (status === 'ready' && dataset) {
    return (
      <Notice tone="ok" testId="dataset-status">
        Prepared: {dataset.name} — {formatInt(dataset.packedRows)} rows of {dataset.max_seq_length} tokens (
        {dataset.template})
      </Notice>
    );
  }
  if (status === 'preparing') return <Notice testId="dataset-status">Preparing…</Notice>;
  if (status === 'error') return <Notice tone="error" testId="dataset-status">{error}</Notice>;
  return (
    <Notice tone="empty" testId="dataset-status">
      No dataset prepared
    </Notice>
  );
}

export function DataTab() {
  const datasetsUrl = useSettingsStore((s) => s.effective.datasetsUrl);
  return (
    <>
      <Section title="Prepared dataset">
        <PreparedDataset />
      </Section>
      <Section title="Datasets">
        <DatasetList />
        <p className="muted small">
          Your own file (JSONL, JSON, Parquet) and Hub datasets (through <code>{datasetsUrl}</code>): not
          available yet.
        </p>
      </Section>
    </>
  );
}
