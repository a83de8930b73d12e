// The mock Hub's write API with plain fetch (no client code): who a token is, repo creation and
// who may do it, the token checks on preupload / LFS batch / commit, the storage host's digest
// check and multipart completion, and a commit's files read back through the download URLs.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockHub, type MockHub } from '../tools/mock-hub/server.ts';

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
let hub: MockHub;
beforeAll(async () => {
  hub = await startMockHub({ uploadLimits: { multipartThreshold: 100, partSize: 64 } });
});
afterAll(() => hub.close());

const call = (path: string, init: RequestInit & { token?: string } = {}): Promise<Response> =>
  fetch(hub.url + path, { ...init, headers: { ...(init.token ? { Authorization: `Bearer ${init.token}` } : {}), ...(init.headers as Record<string, string>) } });
const post = (path: string, body: unknown, token?: string) => call(path, { method: 'POST', token, body: typeof body === 'string' ? body : JSON.stringify(body) });
const ndjson = (lines: unknown[]) => lines.map((l) => JSON.stringify(l)).join('\n');
const errorOf = async (res: Response) => ((await res.json()) as { error: string }).error;

describe('mock Hub write API', () => {
  it('says who a token is, with its role and orgs; 401 without one', async () => {
    const me = await (await call('/api/whoami-v2', { token: 'hf_mock_write' })).json();
    expect(me).toMatchObject({ type: 'user', name: 'mock-user', orgs: [{ type: 'org', name: 'mock-org' }], auth: { accessToken: { role: 'write' } } });
    expect((await (await call('/api/whoami-v2', { token: 'hf_mock_read' })).json()).auth.accessToken.role).toBe('read');
    expect((await call('/api/whoami-v2')).status).toBe(401);
  });

  it('creates repos in the token\'s namespaces only, once', async () => {
    expect((await post('/api/repos/create', { name: 'made', type: 'model' })).status).toBe(401);
    expect((await post('/api/repos/create', { name: 'made', type: 'model' }, 'hf_mock_read')).status).toBe(403);
    const elsewhere = await post('/api/repos/create', { name: 'made', organization: 'webtune', type: 'model' }, 'hf_mock_write');
    expect(elsewhere.status).toBe(403);
    expect(await errorOf(elsewhere)).toBe('You don\'t have the rights to create a model under the namespace "webtune".');
    const ok = await post('/api/repos/create', { name: 'made', type: 'model', private: true }, 'hf_mock_write');
    expect(await ok.json()).toEqual({ url: `${hub.url}/mock-user/made`, name: 'mock-user/made', id: 'mock-user/made' });
    expect((await post('/api/repos/create', { name: 'made', type: 'model' }, 'hf_mock_write')).status).toBe(409);
    // Private: another user's token does not see it.
    expect((await call('/api/models/mock-user/made', { token: 'hf_mock_other' })).status).toBe(404);
    expect((await call('/api/models/mock-user/made', { token: 'hf_mock_write' })).status).toBe(200);
  });

  it('checks the token on preupload, LFS batch and commit: none, read-only, another user\'s, missing repo', async () => {
    await post('/api/repos/create', { name: 'guarded', type: 'model' }, 'hf_mock_write');
    const pre = { files: [{ path: 'a.gguf', size: 10, sample: '' }] };
    const batch = { operation: 'upload', transfers: ['basic'], objects: [{ oid: 'a'.repeat(64), size: 10 }] };
    const commit = ndjson([{ key: 'header', value: { summary: 'x' } }]);
    for (const [path, body] of [
      ['/api/models/mock-user/guarded/preupload/main', pre],
      ['/mock-user/guarded.git/info/lfs/objects/batch', batch],
      ['/api/models/mock-user/guarded/commit/main', commit],
    ] as const) {
      expect((await post(path, body)).status, path).toBe(401);
      expect((await post(path, body, 'hf_mock_read')).status, path).toBe(403);
      expect((await post(path, body, 'hf_mock_other')).status, path).toBe(403);
      expect((await post(path.replace('guarded', 'nothing-here'), body, 'hf_mock_write')).status, path).toBe(404);
    }
    expect(await (await post('/api/models/mock-user/guarded/preupload/main', pre, 'hf_mock_write')).json()).toEqual({ files: [{ path: 'a.gguf', uploadMode: 'lfs', shouldIgnore: false }] });
    expect((await post('/api/models/webtune/tiny-random-llama/commit/main', commit, 'hf_mock_write')).status).toBe(403);
  });

  it('stores LFS objects whole (basic and in parts), refuses wrong bytes and dangling pointers, and serves a commit back', async () => {
    await post('/api/repos/create', { name: 'stored', type: 'model' }, 'hf_mock_write');
    const small = new TextEncoder().encode('0123456789'.repeat(5)); // 50 bytes: one PUT
    const big = new Uint8Array(200).map((_, i) => (i * 7) % 256); // 200 bytes: 4 parts of 64
    const answer = await (
      await call('/mock-user/stored.git/info/lfs/objects/batch', {
        method: 'POST',
        token: 'hf_mock_write',
        body: JSON.stringify({ operation: 'upload', transfers: ['basic', 'multipart'], objects: [{ oid: sha256(small), size: 50 }, { oid: sha256(big), size: 200 }] }),
      })
    ).json();
    const [one, parts] = answer.objects;
    expect(Object.keys(parts.actions.upload.header)).toEqual(['chunk_size', '00001', '00002', '00003', '00004']);
    expect((await fetch(one.actions.upload.href, { method: 'PUT', body: new Uint8Array(50) })).status).toBe(400); // wrong bytes
    expect((await fetch(one.actions.upload.href, { method: 'PUT', body: small })).status).toBe(200);
    const etags: { partNumber: number; etag: string }[] = [];
    for (let n = 1; n <= 4; n++) {
      const res = await fetch(parts.actions.upload.header[String(n).padStart(5, '0')], { method: 'PUT', body: big.slice((n - 1) * 64, n * 64) });
      etags.push({ partNumber: n, etag: res.headers.get('etag')! });
    }
    expect((await fetch(parts.actions.upload.href, { method: 'POST', body: JSON.stringify({ oid: sha256(big), parts: etags }) })).status).toBe(200);
    // Both are now known: a second batch asks for nothing.
    const again = await (await post('/mock-user/stored.git/info/lfs/objects/batch', { operation: 'upload', objects: [{ oid: sha256(small), size: 50 }] }, 'hf_mock_write')).json();
    expect(again.objects[0].actions).toBeUndefined();

    const dangling = await post('/api/models/mock-user/stored/commit/main', ndjson([{ key: 'header', value: { summary: 'x' } }, { key: 'lfsFile', value: { path: 'x.bin', algo: 'sha256', oid: 'b'.repeat(64), size: 3 } }]), 'hf_mock_write');
    expect(dangling.status).toBe(422);
    const done = await post(
      '/api/models/mock-user/stored/commit/main',
      ndjson([
        { key: 'header', value: { summary: 'Add files' } },
        { key: 'file', value: { path: 'notes/readme.txt', content: Buffer.from('hi there').toString('base64'), encoding: 'base64' } },
        { key: 'lfsFile', value: { path: 'small.bin', algo: 'sha256', oid: sha256(small), size: 50 } },
        { key: 'lfsFile', value: { path: 'big.bin', algo: 'sha256', oid: sha256(big), size: 200 } },
      ]),
      'hf_mock_write',
    );
    const c = await done.json();
    expect(c.commitOid).toMatch(/^[0-9a-f]{40}$/);
    const read = async (p: string) => new Uint8Array(await (await call(`/mock-user/stored/resolve/main/${p}`, { token: 'hf_mock_write' })).arrayBuffer());
    expect(new TextDecoder().decode(await read('notes/readme.txt'))).toBe('hi there');
    expect(sha256(await read('small.bin'))).toBe(sha256(small));
    expect(sha256(await read('big.bin'))).toBe(sha256(big));
    expect((await (await call('/api/models/mock-user/stored', { token: 'hf_mock_write' })).json()).sha).toBe(c.commitOid);
  });
});
