import { useState } from 'react';
import { keepPreviousData, useQuery } from '@tanstack/react-query';
import { searchHubModels, type ModelSearchResult } from '../../client/hub-metadata.ts';
import { useModelStore } from '../../store/model.ts';
import { useSettingsStore } from '../../store/settings.ts';
import { MIN_QUERY_LENGTH, resultFacts, SEARCH_LIMIT, searchErrorText, searchStatusText } from './hub-search-text.ts';
import { useDebounced } from '../widgets/useDebounced.ts';

const hostOf = (url: string): string => {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
};

function Result({ result: r, onPick }: { result: ModelSearchResult; onPick: (id: string) => void }) {
  const facts = resultFacts(r);
  return (
    <li>
      <button type="button" className="hub-result" data-testid="hub-search-result" data-model-id={r.id} onClick={() => onPick(r.id)}>
        <span className="hub-result-id">{r.id}</span>
        {r.gated && (
          <span className="badge badge-gated" data-testid="hub-result-gated" title="Gated: accept its licence on the Hub, then save a token below">
            gated
          </span>
        )}
        {r.private && (
          <span className="badge" data-testid="hub-result-private" title="Private: only your token can read it">
            private
          </span>
        )}
        {facts && <span className="hub-result-facts">{facts}</span>}
      </button>
    </li>
  );
}

/** Hub model search (GET /api/models?search=) through react-query; a pick fills in the form. */
export function HubModelSearch({ onPick }: { onPick: (id: string) => void }) {
  const endpoint = useSettingsStore((s) => s.effective.hubUrl);
  const token = useModelStore((s) => s.token);
  const [text, setText] = useState('');
  const query = useDebounced(text.trim(), 350);
  const host = hostOf(endpoint);

  const search = useQuery({
    // With the token: what a search lists depends on it (private repos).
    queryKey: ['hub-model-search', endpoint, token, query],
    queryFn: ({ signal }) => searchHubModels({ endpoint, token }, query, { limit: SEARCH_LIMIT, signal }),
    enabled: query.length >= MIN_QUERY_LENGTH,
    retry: false,
    staleTime: 60_000,
    placeholderData: keepPreviousData, // the last results stay while the next ones come
  });
  const active = text.trim().length >= MIN_QUERY_LENGTH;
  const results = active && !search.isError ? search.data : undefined;
  const status = search.isError
    ? searchErrorText(search.error, navigator.onLine)
    : searchStatusText({ query: text.trim(), host, searching: search.isFetching || text.trim() !== query, results });

  return (
    <div className="hub-search" data-testid="hub-search" data-state={search.isError ? 'error' : search.isFetching ? 'searching' : 'idle'}>
      <label htmlFor="hub-search-input">Search the Hub</label>
      <input
        id="hub-search-input"
        data-testid="hub-search-input"
        type="search"
        autoComplete="off"
        spellCheck={false}
        placeholder="e.g. llama 3.2 instruct, qwen2.5, smollm2"
        aria-describedby="hub-search-status"
        aria-controls="hub-search-results"
        value={text}
        onChange={(e) => setText(e.target.value)}
      />
      <p
        id="hub-search-status"
        className={search.isError ? 'notice notice-error small' : 'muted small hub-search-status'}
        aria-live="polite"
        data-testid="hub-search-status"
      >
        {status}
      </p>
      {results && results.length > 0 && (
        <ul id="hub-search-results" className="hub-results" data-testid="hub-search-results" aria-busy={search.isFetching} data-stale={search.isPlaceholderData || undefined}>
          {results.map((r) => (
            <Result key={r.id} result={r} onPick={onPick} />
          ))}
        </ul>
      )}
    </div>
  );
}
