// Writing exports to disk (NodeDirectorySink) and to File System Access handles (the browser sinks,
// over an in-memory fake of the handle API): files appear under their names only when complete, and
// every failure — a disk that fills up, a cancel, a producer that throws, a rename that fails, a
// wrong size — removes what was started and says what happened and what to do.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { bytesFile, type ExportFile } from '../src/io/export-files.ts';
import { ExportError } from '../src/io/export-job-errors.ts';
import { planExport, runExport } from '../src/io/export-job.ts';
import { writeExport, MemorySink, type ExportSink } from '../src/io/sink.ts';
import { NodeDirectorySink } from '../src/io/sink-node.ts';
import { DirectoryHandleSink, FileHandleSink, type DirectoryHandleLike, type FileHandleLike } from '../src/io/sink-browser.ts';
import { demoExportModel, fillingSink, randomAdapter } from './export-helpers.ts';

const root = mkdtempSync(join(tmpdir(), 'webtune-export-sink-'));
let dir = '';
let n = 0;
beforeEach(() => {
  dir = join(root, `t${n++}`);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const ls = (d: string): string[] => (existsSync(d) ? readdirSync(d).sort() : []);

/** A file of `count` chunks of `size` bytes (chunk i filled with i), produced lazily. */
function chunked(name: string, count: number, size: number, opts: { failAt?: number; hangAt?: number; onChunk?: (i: number) => void } = {}): ExportFile {
  return {
    name,
    size: count * size,
    async *chunks() {
      for (let i = 0; i < count; i++) {
        if (i === opts.failAt) throw new Error('the quantizer ran out of memory');
        if (i === opts.hangAt) await new Promise(() => undefined);
        opts.onChunk?.(i);
        yield new Uint8Array(size).fill(i);
      }
    },
  };
}

async function failure(p: Promise<unknown>): Promise<ExportError> {
  const e = await p.then(
    () => {
      throw new Error('expected the export to fail');
    },
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(ExportError);
  return e as ExportError;
}

describe('NodeDirectorySink', () => {
  it('writes name.partial, then renames every file once all are complete', async () => {
    const sink = new NodeDirectorySink(dir);
    const seen: string[][] = [];
    const files = [chunked('a.bin', 3, 1000, { onChunk: () => seen.push(ls(dir)) }), bytesFile('b.json', new TextEncoder().encode('{}'))];
    const r = await writeExport(files, sink);
    expect(seen).toEqual([['a.bin.partial'], ['a.bin.partial'], ['a.bin.partial']]);
    expect(ls(dir)).toEqual(['a.bin', 'b.json']);
    expect(readFileSync(join(dir, 'a.bin')).subarray(1000, 1003)).toEqual(Buffer.from([1, 1, 1]));
    expect(r.bytes).toBe(3002);
  });

  it('overwrites an earlier export of the same name only on commit', async () => {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'a.bin'), 'old');
    await writeExport([chunked('a.bin', 2, 10)], new NodeDirectorySink(dir));
    expect(readFileSync(join(dir, 'a.bin')).length).toBe(20);
  });

  it('a disk that fills up mid-write: the partial files are removed and the error says how far it got and what to do', async () => {
    const sink = fillingSink(new NodeDirectorySink(dir), 2500);
    const e = await failure(writeExport([chunked('first.bin', 2, 1000), chunked('second.bin', 3, 1000)], sink));
    expect(e.reason).toBe('disk-full');
    expect(e.message).toBe(
      // The chunk that hit the limit does not count as written.
      `Out of space after 2.0 KiB of 4.9 KiB: ${dir} is full. The partial files were removed. Free at least 2.9 KiB on that disk, or pick a folder on another drive, then export again.`,
    );
    expect(ls(dir)).toEqual([]); // the complete first file goes too: the export as a whole failed
  });

  it('ENOSPC from the file system reads the same', async () => {
    const enospc = () => Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    const e = await failure(writeExport([chunked('x.gguf', 4, 100)], fillingSink(new NodeDirectorySink(dir), 150, enospc)));
    expect(e.reason).toBe('disk-full');
    expect(ls(dir)).toEqual([]);
  });

  it('cancel mid-file: stops at once even while a tensor is still being produced, and removes the partial', async () => {
    const ctrl = new AbortController();
    const p = writeExport([chunked('big.gguf', 10, 100, { hangAt: 3, onChunk: (i) => i === 2 && setTimeout(() => ctrl.abort(), 20) })], new NodeDirectorySink(dir), { signal: ctrl.signal });
    const e = await failure(p);
    expect(e.reason).toBe('cancelled');
    expect(e.message).toBe('Export cancelled after 300 B of 1000 B. The partial files were removed.');
    expect(ls(dir)).toEqual([]);
  });

  it('cancel before the start writes nothing', async () => {
    const ctrl = new AbortController();
    ctrl.abort();
    const e = await failure(writeExport([chunked('a', 1, 1)], new NodeDirectorySink(dir), { signal: ctrl.signal }));
    expect(e.reason).toBe('cancelled');
    expect(existsSync(dir)).toBe(false);
  });

  it('a producer that throws: reason failed, naming the file', async () => {
    const e = await failure(writeExport([chunked('ok.bin', 1, 10), chunked('model.gguf', 5, 10, { failAt: 2 })], new NodeDirectorySink(dir)));
    expect(e.reason).toBe('failed');
    expect(e.message).toBe('The export failed while producing model.gguf: the quantizer ran out of memory. The partial files were removed.');
    expect(ls(dir)).toEqual([]);
  });

  it('a rename that fails on commit: reason write-failed, nothing left behind', async () => {
    mkdirSync(join(dir, 'b.bin'), { recursive: true }); // a folder where the file should go
    writeFileSync(join(dir, 'b.bin', 'keep'), 'x');
    const e = await failure(writeExport([chunked('a.bin', 1, 10), chunked('b.bin', 1, 10)], new NodeDirectorySink(dir)));
    expect(e.reason).toBe('write-failed');
    expect(e.message).toMatch(new RegExp(`^Renaming the finished files in ${dir} failed: .*The partial files were removed\\. Check that the destination still exists`));
    expect(ls(dir)).toEqual(['b.bin']); // only what was there before
  });

  it('a destination that cannot be written: reason write-failed', async () => {
    writeFileSync(join(root, `file-${n}`), 'not a folder');
    const e = await failure(writeExport([chunked('a.bin', 1, 10)], new NodeDirectorySink(join(root, `file-${n}`))));
    expect(e.reason).toBe('write-failed');
    expect(e.message).toMatch(/^Writing a\.bin in .* failed: /);
  });

  it('a file that comes out shorter than announced is not passed off as complete', async () => {
    const short: ExportFile = { name: 'x.bin', size: 100, chunks: chunked('x.bin', 1, 60).chunks };
    const e = await failure(writeExport([short], new NodeDirectorySink(dir)));
    expect(e.reason).toBe('failed');
    expect(e.message).toMatch(/x\.bin came out as 60 bytes, 100 were expected/);
    expect(ls(dir)).toEqual([]);
  });

  it('refuses names that could leave the folder', async () => {
    for (const name of ['../x', 'a/b', '..', '']) {
      const e = await failure(writeExport([bytesFile(name, new Uint8Array(1))], new NodeDirectorySink(dir)));
      expect(e.reason).toBe('bad-request');
    }
    expect(existsSync(dir)).toBe(false);
  });

  it('a whole GGUF export of the demo model, then the same into a disk that fills up after 5000 bytes', async () => {
    const model = await demoExportModel();
    const adapter = randomAdapter(model.arch, 7);
    const plan = planExport(model, adapter, { kind: 'gguf', ggufType: 'q4_k_m' });
    const r = await runExport(plan, new NodeDirectorySink(dir));
    expect(ls(dir)).toEqual(['Modelfile', 'demo-tiny-llama-Q4_K_M.gguf']);
    expect(readFileSync(join(dir, 'demo-tiny-llama-Q4_K_M.gguf')).length).toBe(plan.files[0].size);
    expect(r.where).toBe(dir);
    const full = join(dir, 'full');
    const e = await failure(runExport(planExport(model, adapter, { kind: 'gguf', ggufType: 'q4_k_m' }), fillingSink(new NodeDirectorySink(full), 5000)));
    expect(e.reason).toBe('disk-full');
    expect(ls(full)).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// The File System Access API, faked in memory with the semantics the sinks rely on: createWritable
// writes to a swap file that replaces the file's contents on close() and vanishes on abort().

class FakeFile implements FileHandleLike {
  data = new Uint8Array(0);
  constructor(
    public name: string,
    private readonly parent: FakeDir | null,
    readonly canMove: boolean,
  ) {
    if (!canMove) (this as { move?: unknown }).move = undefined;
  }
  async createWritable() {
    const parts: Uint8Array[] = [];
    const owner = this.parent;
    const swap = `${this.name}.crswap`;
    owner?.swaps.add(swap);
    return {
      write: async (d: Uint8Array) => {
        if (owner?.quota !== undefined) {
          owner.quota -= d.length;
          if (owner.quota < 0) throw new DOMException('quota', 'QuotaExceededError');
        }
        parts.push(d.slice());
      },
      close: async () => {
        owner?.swaps.delete(swap);
        this.data = Buffer.concat(parts);
      },
      abort: async () => {
        owner?.swaps.delete(swap);
      },
    };
  }
  async move(newName: string) {
    const p = this.parent!;
    if (p.entries.has(newName)) throw new DOMException('exists', 'InvalidModificationError');
    p.entries.delete(this.name);
    this.name = newName;
    p.entries.set(newName, this);
  }
  removed = false;
  async remove() {
    this.removed = true;
  }
}

class FakeDir implements DirectoryHandleLike {
  entries = new Map<string, FakeFile | FakeDir>();
  swaps = new Set<string>();
  quota?: number;
  constructor(
    readonly name: string,
    readonly canMove = true,
  ) {}
  async getFileHandle(name: string, opts: { create?: boolean } = {}) {
    let f = this.entries.get(name);
    if (!f) {
      if (!opts.create) throw new DOMException(name, 'NotFoundError');
      f = new FakeFile(name, this, this.canMove);
      this.entries.set(name, f);
    }
    return f as FakeFile;
  }
  async getDirectoryHandle(name: string, opts: { create?: boolean } = {}) {
    let d = this.entries.get(name);
    if (!d) {
      if (!opts.create) throw new DOMException(name, 'NotFoundError');
      d = new FakeDir(name, this.canMove);
      this.entries.set(name, d);
    }
    return d as FakeDir;
  }
  async removeEntry(name: string) {
    if (!this.entries.delete(name)) throw new DOMException(name, 'NotFoundError');
  }
  /** Names, with what is still in swap files. */
  names(): string[] {
    return [...this.entries.keys(), ...this.swaps].sort();
  }
}

describe('browser sinks (File System Access handles)', () => {
  for (const canMove of [true, false]) {
    it(`a folder (${canMove ? 'name.partial + move()' : 'no move(): the writable stays open until commit'}): complete files only after commit`, async () => {
      const d = new FakeDir('picked', canMove);
      const sink = new DirectoryHandleSink(d, 'the folder you picked');
      const seen: string[][] = [];
      await writeExport([chunked('m.gguf', 3, 10, { onChunk: () => seen.push(d.names()) }), chunked('Modelfile', 1, 5)], sink);
      if (canMove) expect(seen[1]).toEqual(['m.gguf.partial', 'm.gguf.partial.crswap']);
      else expect(seen[1]).toEqual(['m.gguf', 'm.gguf.crswap']);
      expect((d.entries.get('m.gguf') as FakeFile).data.length).toBe(30);
      expect(d.names()).toEqual(['Modelfile', 'm.gguf']);
    });

    it(`a folder (${canMove ? 'move' : 'no move'}): a full quota removes everything it started`, async () => {
      const d = new FakeDir('picked', canMove);
      d.quota = 35;
      const e = await failure(writeExport([chunked('a', 3, 10), chunked('b', 3, 10)], new DirectoryHandleSink(d, "the browser's storage", 'Free some browser storage.')));
      expect(e.reason).toBe('disk-full');
      expect(e.message).toBe("Out of space after 30 B of 60 B: the browser's storage is full. The partial files were removed. Free some browser storage.");
      expect(d.names()).toEqual([]);
    });
  }

  it('without move(): an older file of the same name survives a failed export untouched', async () => {
    const d = new FakeDir('picked', false);
    const old = await d.getFileHandle('m.gguf', { create: true });
    old.data = new Uint8Array([1, 2, 3]);
    await failure(writeExport([chunked('m.gguf', 3, 10, { failAt: 2 })], new DirectoryHandleSink(d, 'the folder you picked')));
    expect(d.names()).toEqual(['m.gguf']);
    expect([...old.data]).toEqual([1, 2, 3]);
  });

  it("a folder export's own folder goes too when it fails", async () => {
    const picked = new FakeDir('Downloads');
    const sub = await picked.getDirectoryHandle('demo-Q8_0', { create: true });
    const sink = new DirectoryHandleSink(sub, 'x', undefined, () => picked.removeEntry('demo-Q8_0'));
    await failure(writeExport([chunked('a', 2, 1, { failAt: 1 })], sink));
    expect(picked.names()).toEqual([]);
  });

  it('a picked file gets its bytes only on commit; cancelled, it is aborted and removed', async () => {
    const f = new FakeFile('x.zip', null, true);
    await writeExport([chunked('x.zip', 2, 4)], new FileHandleSink(f, 'the file you picked'));
    expect(f.data.length).toBe(8);
    const g = new FakeFile('y.zip', null, true);
    const ctrl = new AbortController();
    const e = await failure(writeExport([chunked('y.zip', 5, 4, { onChunk: (i) => i === 1 && ctrl.abort() })], new FileHandleSink(g, 'the file you picked'), { signal: ctrl.signal }));
    expect(e.reason).toBe('cancelled');
    expect([g.data.length, g.removed]).toEqual([0, true]);
    // One picked file cannot take a folder's worth.
    const h = new FakeFile('z', null, true);
    expect((await failure(writeExport([chunked('a', 1, 1), chunked('b', 1, 1)], new FileHandleSink(h, 'the file you picked')))).reason).toBe('write-failed');
  });
});

describe('memory sink', () => {
  it('keeps nothing of a failed export', async () => {
    const sink: ExportSink = new MemorySink();
    await failure(writeExport([chunked('a', 1, 1), chunked('b', 2, 1, { failAt: 1 })], sink));
    expect((sink as MemorySink).files.size + (sink as MemorySink).partial.size).toBe(0);
  });
});
