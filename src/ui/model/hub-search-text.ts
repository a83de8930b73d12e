// What the Hub model search says, for people: the facts of a result and why a search failed.
import { errorMessage } from '../../client/errors.ts';
import { HubError, type ModelSearchResult } from '../../client/hub-metadata.ts';
import { formatCount } from '../format.ts';

/** Shorter queries match too much of the Hub to be useful. */
export const MIN_QUERY_LENGTH = 2;
export const SEARCH_LIMIT = 20;

const plural = (n: number, one: string): string => `${formatCount(n)} ${one}${n === 1 ? '' : 's'}`;

/** "text-generation · 1.2M downloads · 300 likes" (what the Hub gave). */
export function resultFacts(r: ModelSearchResult): string {
  const facts: string[] = [];
  if (r.pipeline_tag) facts.push(r.pipeline_tag);
  if (r.downloads !== undefined) facts.push(plural(r.downloads, 'download'));
  if (r.likes !== undefined) facts.push(plural(r.likes, 'like'));
  return facts.join(' · ');
}

/** Why the search failed and what to do; `online` is navigator.onLine. */
export function searchErrorText(e: unknown, online: boolean): string {
  if (e instanceof HubError && e.kind === 'offline') {
    return online
      ? `${e.message.replace(/\.$/, '')}, or the Hub base URL in Settings.`
      : 'This browser is offline: the Hub search needs a connection. Reconnect and search again; the demo model and the models in the browser cache load without one.';
  }
  return `The search failed: ${errorMessage(e)}`;
}

/** The line under the search box. */
export function searchStatusText(s: { query: string; host: string; searching: boolean; results: ModelSearchResult[] | undefined }): string {
  if (s.query.length === 0) return `Search the models on ${s.host} by name; pick one to fill in the form below.`;
  if (s.query.length < MIN_QUERY_LENGTH) return `Type at least ${MIN_QUERY_LENGTH} characters.`;
  if (s.searching && !s.results) return `Searching ${s.host}…`;
  if (!s.results) return '';
  if (s.results.length === 0) return `No model on ${s.host} has “${s.query}” in its id: check the spelling, or type the full owner/name below.`;
  const more = s.results.length >= SEARCH_LIMIT ? ` (the first ${SEARCH_LIMIT}, most downloaded first: type more to narrow them)` : '';
  return `${s.results.length === 1 ? '1 model' : `${s.results.length} models`}${more}.`;
}
