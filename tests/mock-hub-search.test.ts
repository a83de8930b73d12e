// The mock Hub's model search (GET /api/models?search=), checked with plain fetch: the Hub's field
// names, case-insensitive substring match on the id, limit with a Link to the next page, expand=,
// sort, and private repos only for a token that may read them.
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURES_DIR, startMockHub } from '../tools/mock-hub/server.ts';
import type { MockHub } from '../tools/mock-hub/server.ts';

let hub: MockHub;
let extra: string;
const search = (query: string, token?: string): Promise<Response> =>
  fetch(`${hub.url}/api/models?${query}`, token ? { headers: { Authorization: `Bearer ${token}` } } : undefined);
const ids = async (res: Response): Promise<string[]> => ((await res.json()) as { id: string }[]).map((m) => m.id);

beforeAll(async () => {
  // A second root with counts in .mock.json, to sort by; plus the demo mounted as e2e does.
  extra = mkdtempSync(join(tmpdir(), 'mock-search-'));
  const make = (id: string, meta: object) => {
    const dir = join(extra, 'models', id);
    mkdirSync(dir, { recursive: true });
    cpSync(join(FIXTURES_DIR, 'models/webtune/tiny-random-llama/config.json'), join(dir, 'config.json'));
    writeFileSync(join(dir, '.mock.json'), JSON.stringify(meta));
  };
  make('acme/Popular-Llama', { downloads: 900, likes: 3 });
  make('acme/quiet-llama', { downloads: 10, likes: 40 });
  hub = await startMockHub({
    roots: [{ models: `${FIXTURES_DIR}models`, datasets: `${FIXTURES_DIR}datasets` }, { models: join(extra, 'models') }],
    mounts: { models: { 'webtune/demo-tiny-llama': 'public/demo/model' } },
  });
});
afterAll(async () => {
  await hub.close();
  rmSync(extra, { recursive: true, force: true });
});

describe('GET /api/models?search=', () => {
  it('matches a substring of the id, case-insensitively, over fixture, mounted and extra repos', async () => {
    const res = await search('search=TINY');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/application\/json/);
    expect(await ids(res)).toEqual(['webtune/demo-tiny-llama', 'webtune/tiny-gated-llama', 'webtune/tiny-random-llama']);
    expect(await ids(await search('search=popular-LLAMA'))).toEqual(['acme/Popular-Llama']);
    expect(await ids(await search('search=no-such-model'))).toEqual([]);
  });

  it('answers the Hub default list fields without expand=', async () => {
    const [m] = (await (await search('search=tiny-random')).json()) as Record<string, unknown>[];
    expect(Object.keys(m).sort()).toEqual(
      ['_id', 'createdAt', 'downloads', 'id', 'library_name', 'likes', 'modelId', 'pipeline_tag', 'private', 'tags', 'trendingScore'].sort(),
    );
    expect(m).toMatchObject({ id: 'webtune/tiny-random-llama', modelId: 'webtune/tiny-random-llama', private: false, downloads: 0, likes: 0, pipeline_tag: 'text-generation' });
    expect(m.tags).toContain('llama');
    expect(m._id).toMatch(/^[0-9a-f]{24}$/);
  });

  it('answers only _id, id and the expanded fields with expand=, gated among them', async () => {
    const list = (await (await search('search=tiny&expand=gated&expand=downloads&expand=private')).json()) as Record<string, unknown>[];
    for (const m of list) expect(Object.keys(m).sort()).toEqual(['_id', 'downloads', 'gated', 'id', 'private']);
    expect(list.find((m) => m.id === 'webtune/tiny-gated-llama')?.gated).toBe('manual');
    expect(list.find((m) => m.id === 'webtune/tiny-random-llama')?.gated).toBe(false);
  });

  it('honours limit, with a Link to the next page', async () => {
    const first = await search('search=llama&limit=2');
    expect(await ids(first)).toEqual(['acme/Popular-Llama', 'acme/quiet-llama']);
    const next = first.headers.get('link')?.match(/<([^>]+)>;\s*rel="next"/)?.[1];
    expect(next).toBeDefined();
    const second = await fetch(next!);
    expect(await ids(second)).toEqual(['webtune/demo-tiny-llama', 'webtune/tiny-gated-llama']);
    const all = await search('search=llama&limit=100');
    expect(all.headers.get('link')).toBeNull();
    expect(await ids(all)).toHaveLength(5);
  });

  it('refuses a limit that is not a whole number from 1 to 1000', async () => {
    for (const limit of ['0', 'abc', '2.5', '1001']) {
      const res = await search(`search=llama&limit=${limit}`);
      expect(res.status).toBe(400);
      expect((await res.json()).error).toMatch(/"limit" must be an integer from 1 to 1000/);
    }
  });

  it('sorts by downloads or likes, most first (direction=1: least first), and filters by author', async () => {
    expect(await ids(await search('search=acme&sort=downloads'))).toEqual(['acme/Popular-Llama', 'acme/quiet-llama']);
    expect(await ids(await search('search=acme&sort=likes'))).toEqual(['acme/quiet-llama', 'acme/Popular-Llama']);
    expect(await ids(await search('search=acme&sort=downloads&direction=1'))).toEqual(['acme/quiet-llama', 'acme/Popular-Llama']);
    const counts = (await (await search('search=popular&expand=downloads&expand=likes')).json()) as Record<string, unknown>[];
    expect(counts[0]).toMatchObject({ downloads: 900, likes: 3 });
    expect(await ids(await search('author=acme'))).toEqual(['acme/Popular-Llama', 'acme/quiet-llama']);
  });

  it('lists private repos only for a token that may read them; refuses unknown tokens', async () => {
    expect(await ids(await search('search=private'))).toEqual([]);
    expect(await ids(await search('search=private', 'hf_mock_noaccess'))).toEqual([]);
    const mine = (await (await search('search=private&expand=private', 'hf_mock_ok')).json()) as Record<string, unknown>[];
    expect(mine).toEqual([expect.objectContaining({ id: 'webtune/tiny-private-llama', private: true })]);
    const refused = await search('search=tiny', 'hf_typo');
    expect(refused.status).toBe(401);
  });

  it('is rate-limited like the other /api/ routes', async () => {
    hub.faults.rateLimit({ retryAfterSeconds: 5, pathPrefix: '/api/models' });
    const res = await search('search=tiny');
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after')).toBe('5');
    expect((await search('search=tiny')).status).toBe(200);
  });
});
