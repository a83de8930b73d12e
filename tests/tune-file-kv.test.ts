// The runner's prepared-dataset store on disk (tools/tune/file-kv.ts): values come back as stored
// (typed arrays included, as IndexedDB keeps them), across instances, and keys with slashes work.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileKv } from '../tools/tune/file-kv.ts';

const dir = mkdtempSync(join(tmpdir(), 'tune-kv-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('FileKv', () => {
  it('stores, lists, reads back in a new instance, and deletes', async () => {
    const kv = new FileKv(dir);
    const block = { rows: 2, input_ids: new Int32Array([1, -2, 3]), labels_mask: new Uint8Array([0, 1, 1]), segment_ids: new Uint16Array([1, 1, 2]) };
    await kv.setMany([
      ['s/fp/0/train', block],
      ['m/fp', { version: 1, name: 'x', shards: [{ trainRows: 2 }] }],
    ]);
    expect((await kv.keys()).sort()).toEqual(['m/fp', 's/fp/0/train']);
    expect(readdirSync(dir).some((f) => f.endsWith('.tmp'))).toBe(false);

    const again = new FileKv(dir);
    const got = await again.get<typeof block>('s/fp/0/train');
    expect(got?.input_ids).toBeInstanceOf(Int32Array);
    expect(Array.from(got!.input_ids)).toEqual([1, -2, 3]);
    expect(got?.segment_ids).toBeInstanceOf(Uint16Array);
    expect(await again.getMany(['m/fp', 'nothing'])).toEqual([{ version: 1, name: 'x', shards: [{ trainRows: 2 }] }, undefined]);

    await again.delMany(['s/fp/0/train', 'never-there']);
    expect(await again.keys()).toEqual(['m/fp']);
    expect(await again.get('s/fp/0/train')).toBeUndefined();
  });
});
