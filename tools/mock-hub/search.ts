// GET /api/models?search=&author=&limit=&sort=&direction=&expand=: the Hub's model search over the
// repos this mock serves. Without expand= an item has the Hub's default list fields; with it, only
// _id, id and the fields asked for (as huggingface.js' listModels asks for gated and private).
import { createHash } from 'node:crypto';
import type { Ctx } from './context.ts';
import { modelFields } from './hub-api.ts';
import { sendError, sendJson } from './http.ts';
import type { Repo } from './repos.ts';

const FIXED_DATE = '2025-01-01T00:00:00.000Z';
/** The Hub refuses larger pages. */
export const MAX_SEARCH_LIMIT = 1000;
const DEFAULT_FIELDS = ['_id', 'id', 'likes', 'trendingScore', 'private', 'downloads', 'tags', 'pipeline_tag', 'library_name', 'createdAt', 'modelId'];
const SORTABLE = new Set(['downloads', 'likes', 'trendingScore', 'createdAt', 'lastModified', 'id']);

function searchItem(repo: Repo): Record<string, unknown> {
  const main = repo.revisions.get('main')!;
  const fields = modelFields(repo, main);
  return {
    _id: createHash('sha1').update(`${repo.type}/${repo.id}`).digest('hex').slice(0, 24),
    id: repo.id,
    modelId: repo.id,
    author: repo.id.split('/')[0],
    sha: main.sha,
    likes: repo.meta.likes ?? 0,
    trendingScore: 0,
    private: repo.meta.private ?? false,
    gated: repo.meta.gated ?? false,
    disabled: false,
    downloads: repo.meta.downloads ?? 0,
    tags: fields.tags,
    pipeline_tag: fields.pipeline_tag,
    library_name: fields.library_name,
    createdAt: FIXED_DATE,
    lastModified: FIXED_DATE,
  };
}

function pick(item: Record<string, unknown>, keys: string[]): Record<string, unknown> {
  return Object.fromEntries(keys.filter((k) => item[k] !== undefined).map((k) => [k, item[k]]));
}

function compare(a: Record<string, unknown>, b: Record<string, unknown>, key: string): number {
  const x = a[key];
  const y = b[key];
  if (typeof x === 'number' && typeof y === 'number') return x - y;
  return String(x).localeCompare(String(y));
}

/** Answers the search; private repos only for a token that may read them, as on the Hub. */
export function sendModelSearch(ctx: Ctx): void {
  const q = ctx.url.searchParams;
  const limitText = q.get('limit');
  const limit = limitText === null ? MAX_SEARCH_LIMIT : Number(limitText);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_SEARCH_LIMIT) {
    sendError(ctx.res, 400, undefined, `"limit" must be an integer from 1 to ${MAX_SEARCH_LIMIT}`);
    return;
  }
  const needle = (q.get('search') ?? '').toLowerCase();
  const author = q.get('author');
  const sort = q.get('sort');
  const expand = q.getAll('expand');

  let items = ctx.store
    .list('model')
    .filter((id) => id.toLowerCase().includes(needle) && (!author || id.split('/')[0] === author))
    .map((id) => ctx.store.get('model', id))
    .filter((r): r is Repo => r !== undefined && (r.meta.private !== true || ctx.grant?.readPrivate === true))
    .map(searchItem);
  items.sort((a, b) => compare(a, b, 'id'));
  if (sort && SORTABLE.has(sort)) {
    // Most first, as the Hub sorts (direction=1 turns it around); ties stay in id order.
    const sign = q.get('direction') === '1' ? 1 : -1;
    items.sort((a, b) => sign * compare(a, b, sort));
  }

  // Paged like the Hub: a Link to the next page when more matched than `limit`.
  const cursor = q.get('cursor');
  const offset = cursor ? Number(Buffer.from(cursor, 'base64url').toString()) || 0 : 0;
  const headers: Record<string, string> = {};
  if (offset + limit < items.length) {
    const next = new URL(ctx.url.pathname + ctx.url.search, ctx.base);
    next.searchParams.set('cursor', Buffer.from(String(offset + limit)).toString('base64url'));
    headers.Link = `<${next.href}>; rel="next"`;
  }
  items = items.slice(offset, offset + limit);
  const keys = expand.length > 0 ? ['_id', 'id', ...expand] : DEFAULT_FIELDS;
  sendJson(
    ctx.res,
    200,
    items.map((item) => pick(item, keys)),
    headers,
  );
}
