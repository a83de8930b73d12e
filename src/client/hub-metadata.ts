// Hub metadata the page reads itself, through react-query (DESIGN.md: Hub metadata in the UI goes
// through react-query, bulk bytes through the workers): the model search and a model's config.json.
// Small JSON answers, so no worker hop; the UI reaches src/io only through this module.
import { HubClient, type ModelSearchOptions, type ModelSearchResult } from '../io/hub.ts';

export { HubError } from '../io/hub.ts';
export type { HubErrorKind, ModelSearchResult } from '../io/hub.ts';

/** The Hub base URL and the person's token (sent only to that URL). */
export interface HubAccess {
  endpoint: string;
  token?: string;
}

const client = (hub: HubAccess): HubClient => new HubClient({ endpoint: hub.endpoint, token: hub.token || undefined });

/** GET /api/models?search=: models whose id contains `query`, most downloaded first. */
export function searchHubModels(hub: HubAccess, query: string, opts: ModelSearchOptions = {}): Promise<ModelSearchResult[]> {
  return client(hub).searchModels(query, { sort: 'downloads', ...opts });
}

/** A model repo's config.json, parsed (what the memory planner reads). */
export async function fetchModelConfig(hub: HubAccess, id: string, revision = 'main', signal?: AbortSignal): Promise<Record<string, unknown>> {
  const json = await client(hub).fileJson({ type: 'model', id }, 'config.json', revision, signal);
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error(`config.json of ${id} is not a JSON object.`);
  return json as Record<string, unknown>;
}
