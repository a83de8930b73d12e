import { useState, type FormEvent } from 'react';
import { useQuery } from '@tanstack/react-query';
import { data, errorMessage } from '../../client/index.ts';
import { hubEndpoints, useDatasetStore } from '../../store/dataset.ts';
import { useSettingsStore } from '../../store/settings.ts';
import { useDebounced } from '../widgets/useDebounced.ts';

const ID = /^[\w.-]+\/[\w.-]+$/;

/** A Hub dataset by id, split and row limit (the seed's FineTome-100k train[:10000]). */
export function HubDatasetForm() {
  const choose = useDatasetStore((s) => s.chooseSource);
  const settings = useSettingsStore((s) => s.effective);
  const [dataset, setDataset] = useState('mlabonne/FineTome-100k');
  const [split, setSplit] = useState('train');
  const [limit, setLimit] = useState('10000');
  const id = useDebounced(dataset.trim(), 400);

  // Metadata through the data worker (the page fetches no dataset bytes).
  const splits = useQuery({
    queryKey: ['hub-splits', settings.hubUrl, settings.datasetsUrl, id],
    queryFn: () => data.hubSplits(hubEndpoints(), id),
    enabled: ID.test(id),
    retry: false,
  });
  const choices = splits.data ?? [];
  const config = choices.find((s) => s.split === split)?.config;

  const onSubmit = (e: FormEvent) => {
    e.preventDefault();
    const n = limit.trim() === '' ? null : Number(limit);
    void choose({ kind: 'hub', hub: hubEndpoints(), dataset: dataset.trim(), config, split, limit: n });
  };

  return (
    <form onSubmit={onSubmit} aria-label="Hub dataset" className="hub-dataset-form">
      <div className="field">
        <label htmlFor="hub-dataset">Dataset id</label>
        <input id="hub-dataset" value={dataset} onChange={(e) => setDataset(e.target.value)} spellCheck={false} data-testid="hub-dataset" required />
        <small>
          {splits.isFetching
            ? 'Looking up its splits…'
            : splits.isError
              ? errorMessage(splits.error)
              : choices.length > 0
                ? `Splits: ${choices.map((s) => (s.config === 'default' ? s.split : `${s.config}/${s.split}`)).join(', ')}`
                : 'owner/name, as on the Hub'}
        </small>
      </div>
      <div className="row fields">
        <div className="field">
          <label htmlFor="hub-split">Split</label>
          {choices.length > 0 ? (
            <select id="hub-split" value={split} onChange={(e) => setSplit(e.target.value)} data-testid="hub-split">
              {[...new Set(choices.map((s) => s.split))].map((s) => (
                <option key={s}>{s}</option>
              ))}
            </select>
          ) : (
            <input id="hub-split" value={split} onChange={(e) => setSplit(e.target.value)} data-testid="hub-split" required />
          )}
        </div>
        <div className="field">
          <label htmlFor="hub-limit">First rows (empty: all)</label>
          <input id="hub-limit" type="number" min={1} value={limit} onChange={(e) => setLimit(e.target.value)} data-testid="hub-limit" />
        </div>
      </div>
      <button type="submit" data-testid="hub-load">
        Use this dataset
      </button>
    </form>
  );
}
