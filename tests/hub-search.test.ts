// The Hub model search and config reads of the client (src/io/hub.ts through src/client/hub-metadata.ts)
// over real HTTP: against the mock Hub, and against a small server that answers as no Hub does
// (HTML, a JSON object, entries without an id) to check that bad answers read as clear errors.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { fetchModelConfig, HubError, searchHubModels } from '../src/client/hub-metadata.ts';
import { HubClient } from '../src/io/hub.ts';
import { startMockHub } from '../tools/mock-hub/server.ts';
import type { MockHub } from '../tools/mock-hub/server.ts';

let hub: MockHub;
let odd: Server;
let oddUrl: string;
/** What the odd server answers next on any path: status, content type, body. */
let oddAnswer: { status: number; type: string; body: string } = { status: 200, type: 'application/json', body: '[]' };

async function hubError(p: Promise<unknown>): Promise<HubError> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(HubError);
  return e as HubError;
}

beforeAll(async () => {
  hub = await startMockHub({ port: 0 });
  odd = createServer((_req, res) => {
    res.writeHead(oddAnswer.status, { 'Content-Type': oddAnswer.type });
    res.end(oddAnswer.body);
  });
  await new Promise<void>((resolve) => odd.listen(0, '127.0.0.1', resolve));
  oddUrl = `http://127.0.0.1:${(odd.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await hub.close();
  await new Promise<void>((resolve) => odd.close(() => resolve()));
});
afterEach(() => {
  hub.faults.clear();
  hub.requests.length = 0;
});

describe('searchModels', () => {
  it('asks the Hub URL shape (search, limit, sort, expand=) and reads id, counts, gated, private, task', async () => {
    const results = await searchHubModels({ endpoint: hub.url }, ' tiny ', { limit: 20 });
    expect(results.map((r) => r.id)).toEqual(['webtune/tiny-gated-llama', 'webtune/tiny-random-llama']);
    expect(results[0]).toEqual({
      id: 'webtune/tiny-gated-llama',
      downloads: 0,
      likes: 0,
      gated: 'manual',
      private: false,
      pipeline_tag: 'text-generation',
      lastModified: '2025-01-01T00:00:00.000Z',
    });
    expect(results[1].gated).toBe(false);
    const url = new URL(hub.requests.at(-1)!.url, hub.url);
    expect(url.pathname).toBe('/api/models');
    expect(url.searchParams.get('search')).toBe('tiny');
    expect(url.searchParams.get('limit')).toBe('20');
    expect(url.searchParams.get('sort')).toBe('downloads');
    expect(url.searchParams.getAll('expand')).toEqual(expect.arrayContaining(['downloads', 'likes', 'gated', 'private', 'pipeline_tag']));
  });

  it('honours the limit', async () => {
    expect(await new HubClient({ endpoint: hub.url }).searchModels('llama', { limit: 1 })).toHaveLength(1);
  });

  it('sends the token only with one, and then lists the private repos it may read', async () => {
    await searchHubModels({ endpoint: hub.url }, 'private');
    expect(hub.requests.at(-1)!.authorization).toBeUndefined();
    const mine = await searchHubModels({ endpoint: hub.url, token: 'hf_mock_ok' }, 'private');
    expect(mine).toEqual([expect.objectContaining({ id: 'webtune/tiny-private-llama', private: true })]);
    expect(hub.requests.at(-1)!.authorization).toBe('Bearer hf_mock_ok');
  });

  it('passes an abort through', async () => {
    const ctrl = new AbortController();
    ctrl.abort();
    await expect(searchHubModels({ endpoint: hub.url }, 'tiny', { signal: ctrl.signal })).rejects.toMatchObject({ name: 'AbortError' });
  });
});

describe('search errors are sentences with a next step', () => {
  it('offline: names the host and says to check the connection', async () => {
    const e = await hubError(searchHubModels({ endpoint: 'http://127.0.0.1:1' }, 'llama'));
    expect(e.kind).toBe('offline');
    expect(e.status).toBe(0);
    expect(e.message).toBe('Cannot reach 127.0.0.1:1: check the connection (the demo model works offline).');
  });

  it('a refused token: says to paste a valid one in the Model tab', async () => {
    const e = await hubError(searchHubModels({ endpoint: hub.url, token: 'hf_typo' }, 'llama'));
    expect(e.kind).toBe('unauthorized');
    expect(e.status).toBe(401);
    expect(e.message).toMatch(/refused the Hugging Face token: paste a valid token with read access in the Model tab \(Hugging Face token\)/);
  });

  it('a 401 without a token: asks for one', async () => {
    oddAnswer = { status: 401, type: 'application/json', body: '{"error":"Unauthorized"}' };
    const e = await hubError(searchHubModels({ endpoint: oddUrl }, 'llama'));
    expect(e.kind).toBe('unauthorized');
    expect(e.message).toMatch(/asked for a token to search models: paste a token with read access in the Model tab/);
  });

  it('rate limited: how long to wait, and that a token raises the limit', async () => {
    hub.faults.rateLimit({ retryAfterSeconds: 30, pathPrefix: '/api/models' });
    const e = await hubError(searchHubModels({ endpoint: hub.url }, 'llama'));
    expect(e.kind).toBe('rate-limited');
    expect(e.retryAfterSeconds).toBe(30);
    expect(e.message).toMatch(/is limiting requests: wait 30 s and try again \(a token in the Model tab \(Hugging Face token\) raises the limit\)\./);
  });

  it('no search at that URL (404): says to check the Hub base URL in Settings', async () => {
    const e = await hubError(searchHubModels({ endpoint: `${hub.url}/not-a-hub` }, 'llama'));
    expect(e.kind).toBe('http');
    expect(e.status).toBe(404);
    expect(e.message).toMatch(/has no model search \(404 for \/api\/models\): check the Hub base URL in Settings \(now http:\/\/.*\/not-a-hub\)\./);
  });

  it('a page that is not JSON (a web page at the Hub URL)', async () => {
    oddAnswer = { status: 200, type: 'text/html', body: '<!DOCTYPE html>\n<html><body>Welcome to a web server</body></html>' };
    const e = await hubError(searchHubModels({ endpoint: oddUrl }, 'llama'));
    expect(e.kind).toBe('bad-response');
    expect(e.message).toMatch(/^127\.0\.0\.1:\d+ answered the model search with something that is not JSON \(it starts "<!DOCTYPE html> <html><body>Welcome to a…"\): check the Hub base URL in Settings/);
    oddAnswer = { status: 200, type: 'application/json', body: '' };
    expect((await hubError(searchHubModels({ endpoint: oddUrl }, 'llama'))).message).toMatch(/not JSON \(it is empty\)/);
  });

  it('JSON of the wrong shape: not a list, or entries without an id', async () => {
    oddAnswer = { status: 200, type: 'application/json', body: '{"models":[]}' };
    let e = await hubError(searchHubModels({ endpoint: oddUrl }, 'llama'));
    expect(e.kind).toBe('bad-response');
    expect(e.message).toMatch(/answered the model search with an object, not a list of models: check the Hub base URL in Settings\./);
    oddAnswer = { status: 200, type: 'application/json', body: 'null' };
    expect((await hubError(searchHubModels({ endpoint: oddUrl }, 'llama'))).message).toMatch(/with null, not a list of models/);
    oddAnswer = { status: 200, type: 'application/json', body: '[{"id":"a/b"},{"downloads":3}]' };
    e = await hubError(searchHubModels({ endpoint: oddUrl }, 'llama'));
    expect(e.message).toMatch(/with an entry without a model id \(entry 2\), not a list of models/);
  });

  it('keeps what it understands of each entry: modelId for a missing id, odd field types dropped', async () => {
    oddAnswer = {
      status: 200,
      type: 'application/json',
      body: JSON.stringify([{ modelId: 'a/b', downloads: '12', likes: 3, gated: 'sometimes', private: 'no', pipeline_tag: 7, extra: 1 }]),
    };
    expect(await searchHubModels({ endpoint: oddUrl }, 'a')).toEqual([
      { id: 'a/b', downloads: undefined, likes: 3, gated: undefined, private: undefined, pipeline_tag: undefined, lastModified: undefined },
    ]);
  });
});

describe('fetchModelConfig', () => {
  it("reads a model's config.json at a revision", async () => {
    const config = await fetchModelConfig({ endpoint: hub.url }, 'webtune/tiny-random-llama', 'main');
    expect(config).toMatchObject({ model_type: 'llama', architectures: ['LlamaForCausalLM'] });
  });

  it('gated without a token, and a config that is not JSON, are HubErrors with a next step', async () => {
    const gated = await hubError(fetchModelConfig({ endpoint: hub.url }, 'webtune/tiny-gated-llama'));
    expect(gated.kind).toBe('gated');
    expect(await fetchModelConfig({ endpoint: hub.url, token: 'hf_mock_ok' }, 'webtune/tiny-gated-llama')).toMatchObject({ model_type: 'llama' });
    oddAnswer = { status: 200, type: 'text/plain', body: 'not json' };
    const bad = await hubError(fetchModelConfig({ endpoint: oddUrl }, 'a/b'));
    expect(bad.kind).toBe('bad-response');
    expect(bad.message).toMatch(/answered config\.json of a\/b with something that is not JSON \(it starts "not json"\)/);
  });
});
