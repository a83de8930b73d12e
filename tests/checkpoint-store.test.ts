// Checkpoint storage (src/io/checkpoint-store*.ts): the commit protocol (data, then its record,
// then the older checkpoints go) over the three stores, and what survives failures: a write that
// throws part-way (a GPU lost while its tensors stream out), a process killed mid-write (a
// leftover temp file), a damaged file (CRC). The OPFS store runs over a fake directory handle with
// the File System spec's semantics (a writable's data lands on close; abort drops it; move renames).
import { mkdtempSync, readdirSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  clearCheckpoints,
  commitCheckpoint,
  crc32,
  listCommitted,
  loadCommitted,
  MemoryCheckpointStore,
  type CheckpointStore,
} from '../src/io/checkpoint-store.ts';
import { DirectoryCheckpointStore } from '../src/io/checkpoint-store-node.ts';
import { OpfsCheckpointStore, type OpfsDirHandle, type OpfsFileHandle } from '../src/io/checkpoint-store-opfs.ts';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** An in-memory directory with OPFS semantics; `withMove: false` is a browser without move(). */
class FakeOpfsDir implements OpfsDirHandle {
  readonly files = new Map<string, Uint8Array>();
  constructor(private readonly withMove = true) {}
  async getDirectoryHandle(): Promise<OpfsDirHandle> {
    throw new Error('not used');
  }
  async getFileHandle(name: string, opts?: { create?: boolean }): Promise<OpfsFileHandle> {
    if (!this.files.has(name)) {
      if (!opts?.create) throw Object.assign(new Error(`${name} not found`), { name: 'NotFoundError' });
      this.files.set(name, new Uint8Array(0));
    }
    let current = name;
    const handle: OpfsFileHandle = {
      getFile: async () => new Blob([this.files.get(current)! as Uint8Array<ArrayBuffer>]),
      createWritable: async () => {
        const parts: Uint8Array[] = [];
        return {
          write: async (d: Uint8Array) => void parts.push(d.slice()),
          close: async () => void this.files.set(current, new Uint8Array(Buffer.concat(parts))),
          abort: async () => void (parts.length = 0),
        };
      },
    };
    if (this.withMove) {
      handle.move = async (to: string) => {
        this.files.set(to, this.files.get(current)!);
        this.files.delete(current);
        current = to;
      };
    }
    return handle;
  }
  async removeEntry(name: string): Promise<void> {
    if (!this.files.delete(name)) throw Object.assign(new Error(`${name} not found`), { name: 'NotFoundError' });
  }
  async *keys(): AsyncIterable<string> {
    yield* [...this.files.keys()];
  }
}

function directoryStore(): DirectoryCheckpointStore {
  const dir = mkdtempSync(join(tmpdir(), 'webtune-store-'));
  dirs.push(dir);
  return new DirectoryCheckpointStore(dir);
}

const stores: [string, () => CheckpointStore][] = [
  ['memory', () => new MemoryCheckpointStore()],
  ['directory (node:fs)', directoryStore],
  ['OPFS (fake handle, with move)', () => new OpfsCheckpointStore(new FakeOpfsDir(true))],
  ['OPFS (fake handle, without move)', () => new OpfsCheckpointStore(new FakeOpfsDir(false))],
];

const payload = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed * 7) & 0xff);

/** Chunks of `bytes`, then an error after `failAfter` chunks (a readback failing mid-stream). */
async function* chunks(bytes: Uint8Array, size: number, failAfter = Infinity): AsyncGenerator<Uint8Array> {
  let n = 0;
  for (let o = 0; o < bytes.length; o += size) {
    if (n++ === failAfter) throw new Error('device lost while reading back');
    yield bytes.subarray(o, o + size);
  }
}

describe.each(stores)('checkpoint store: %s', (_, make) => {
  it('commits data and record; keeps only the newest; reads it back whole', async () => {
    const store = make();
    expect(await loadCommitted(store)).toBeNull();
    const a = payload(10_000, 1);
    const r1 = await commitCheckpoint(store, chunks(a, 999), ({ bytes }) => ({ step: 1, bytes }));
    expect(r1).toMatchObject({ seq: 1, file: 'ckpt-00000001.safetensors', bytes: 10_000, crc32: crc32(a), info: { step: 1, bytes: 10_000 } });
    const b = payload(7_000, 2);
    await commitCheckpoint(store, b, () => ({ step: 2 }));
    expect((await store.list()).sort()).toEqual(['ckpt-00000002.json', 'ckpt-00000002.safetensors']);
    const got = await loadCommitted<{ step: number }>(store);
    expect(got?.record.info.step).toBe(2);
    expect(Array.from(got!.data)).toEqual(Array.from(b));
    await clearCheckpoints(store);
    expect(await store.list()).toEqual([]);
  });

  it('a write that fails part-way keeps the previous checkpoint readable, and the next commit tidies up', async () => {
    const store = make();
    const good = payload(5_000, 3);
    await commitCheckpoint(store, good, () => ({ step: 4 }));
    await expect(commitCheckpoint(store, chunks(payload(5_000, 4), 1000, 2), () => ({ step: 6 }))).rejects.toThrow(/device lost/);
    const kept = await loadCommitted<{ step: number }>(store);
    expect(kept?.record.info.step).toBe(4);
    expect(Array.from(kept!.data)).toEqual(Array.from(good));
    expect((await listCommitted(store)).map((r) => r.seq)).toEqual([1]);
    // A record-less data file (the process died between the two writes) is not a checkpoint either.
    await store.write('ckpt-00000007.safetensors', payload(100, 5));
    expect((await loadCommitted<{ step: number }>(store))?.record.info.step).toBe(4);
    await commitCheckpoint(store, payload(300, 6), () => ({ step: 8 }));
    expect((await store.list()).sort()).toEqual(['ckpt-00000008.json', 'ckpt-00000008.safetensors']);
  });
});

describe('checkpoint store: failures outside the protocol', () => {
  it('directory: a temp file left by a killed process is ignored; a damaged file is detected by its CRC', async () => {
    const store = directoryStore();
    const good = payload(4_000, 7);
    await commitCheckpoint(store, good, () => ({ step: 10 }));
    // A process killed while writing checkpoint 2 leaves half a temp file, never renamed.
    writeFileSync(join(store.dir, 'ckpt-00000002.safetensors.tmp'), payload(2_000, 8));
    expect((await loadCommitted<{ step: number }>(store))?.record.info.step).toBe(10);
    // A flipped bit in the committed data: no checkpoint rather than a wrong one, with the reason.
    const path = join(store.dir, 'ckpt-00000001.safetensors');
    const bytes = readFileSync(path);
    bytes[1234] ^= 0x10;
    writeFileSync(path, bytes);
    const problems: string[] = [];
    expect(await loadCommitted(store, problems)).toBeNull();
    expect(problems.join()).toMatch(/ckpt-00000001.safetensors is damaged/);
    // The next commit takes a fresh number and removes the leftovers.
    const r = await commitCheckpoint(store, payload(10, 9), () => ({ step: 11 }));
    expect(r.seq).toBe(3);
    expect(readdirSync(store.dir).sort()).toEqual(['ckpt-00000003.json', 'ckpt-00000003.safetensors']);
  });

  it.each([true, false])('OPFS (move: %s): a failed write leaves the old file or none, never a partial one', async (withMove) => {
    const dir = new FakeOpfsDir(withMove);
    const store = new OpfsCheckpointStore(dir);
    await expect(store.write('x.bin', chunks(payload(100, 1), 10, 3))).rejects.toThrow(/device lost/);
    expect([...dir.files.keys()]).toEqual([]);
    await store.write('x.bin', payload(100, 1));
    await expect(store.write('x.bin', chunks(payload(100, 2), 10, 3))).rejects.toThrow(/device lost/);
    expect([...dir.files.keys()]).toEqual(['x.bin']);
    expect(Array.from((await store.read('x.bin'))!)).toEqual(Array.from(payload(100, 1)));
    expect(await store.read('missing')).toBeNull();
    await store.remove('missing'); // no error
  });

  it('crc32 of known strings', () => {
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(0))).toBe(0);
  });
});
