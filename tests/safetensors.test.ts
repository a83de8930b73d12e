import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { f32ToBf16Bits, f32ToF16Bits, u16ToBytesLE } from '../src/io/dtype.ts';
import {
  blobSource,
  buildSafetensorsHeader,
  bytesSource,
  DTYPE_BYTES,
  type Dtype,
  formatShardIndex,
  httpSource,
  MAX_HEADER_BYTES,
  openSafetensors,
  openShardedSafetensors,
  parseShardIndex,
  planShards,
  rangeFetcher,
  type ByteSource,
  SafetensorsError,
  safetensorsFileSize,
  safetensorsStream,
  shardFileName,
  type TensorToWrite,
  writeSafetensors,
  writeSafetensorsToBytes,
} from '../src/io/safetensors.ts';

const enc = new TextEncoder();

/** A file built by hand from the spec's byte layout: u64 LE N | N bytes JSON | data. */
function handFile(header: string | Uint8Array, data: Uint8Array | number[] = [], nOverride?: bigint): Uint8Array {
  const json = typeof header === 'string' ? enc.encode(header) : header;
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, nOverride ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function rand(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x9e3779b9) >>> 0;
    return s;
  };
}

function randomBytes(n: number, seed: number): Uint8Array {
  const r = rand(seed);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = r() & 0xff;
  return out;
}

async function expectError(p: Promise<unknown> | (() => unknown), pattern: RegExp): Promise<SafetensorsError> {
  let err: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    err = e;
  }
  expect(err, `expected a SafetensorsError matching ${pattern}`).toBeInstanceOf(SafetensorsError);
  expect((err as Error).message).toMatch(pattern);
  return err as SafetensorsError;
}

const open = (bytes: Uint8Array, name = 'test.safetensors') => openSafetensors(bytesSource(bytes, name));

describe('safetensors: spec byte layout', () => {
  it('reads a file built by hand from the format description', async () => {
    // a: F32[2] = [1, -2]; b: BF16[] = 1.0 (0-dim); c: I8[0] (empty); d: U8[2,1] = [7, 9]
    const data = [0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0, 0x80, 0x3f, 7, 9];
    const header =
      '{"__metadata__":{"format":"pt","note":"hand"},' +
      '"d":{"dtype":"U8","shape":[2,1],"data_offsets":[10,12]},' +
      '"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' +
      '"c":{"dtype":"I8","shape":[0],"data_offsets":[10,10]},' +
      '"b":{"dtype":"BF16","shape":[],"data_offsets":[8,10]}}   ';
    const st = await open(handFile(header, data));
    expect(st.metadata).toEqual({ format: 'pt', note: 'hand' });
    expect(st.headerLength).toBe(enc.encode(header).length);
    expect(st.dataOffset).toBe(8 + st.headerLength);
    expect(st.tensors.map((t) => t.name)).toEqual(['a', 'b', 'c', 'd']); // file order
    expect(st.get('a')).toMatchObject({ dtype: 'F32', shape: [2], numel: 2, byteLength: 8, dataOffsets: [0, 8] });
    expect(st.get('b')).toMatchObject({ shape: [], numel: 1, byteLength: 2 });
    expect(st.get('c')).toMatchObject({ shape: [0], numel: 0, byteLength: 0 });
    expect(st.get('d').fileOffset).toBe(8 + st.headerLength + 10);
    expect([...(await st.readF32('a'))]).toEqual([1, -2]);
    expect([...(await st.readF32('b'))]).toEqual([1]);
    expect([...(await st.read('c'))]).toEqual([]);
    expect([...(await st.read('d'))]).toEqual([7, 9]);
    expect(st.has('a')).toBe(true);
    expect(st.has('zz')).toBe(false);
    await expectError(() => st.get('zz'), /test\.safetensors: no tensor named "zz"/);
    await expectError(st.readF32('d'), /"d" has dtype U8, which is not a float type/);
  });

  it('the writer produces exactly the reference byte layout', async () => {
    const bytes = await writeSafetensorsToBytes([
      { name: 'w', dtype: 'F16', shape: [2], data: u16ToBytesLE(new Uint16Array([0x3c00, 0xc000])) },
      { name: 'b', dtype: 'U8', shape: [1], data: new Uint8Array([5]) },
    ]);
    const json =
      '{"__metadata__":{"format":"pt"},"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},' +
      '"b":{"dtype":"U8","shape":[1],"data_offsets":[4,5]}}';
    const padded = json + ' '.repeat((8 - (json.length % 8)) % 8);
    expect(bytes).toEqual(handFile(padded, [0x00, 0x3c, 0x00, 0xc0, 5]));
  });
});

describe('safetensors: writer and reader round trip', () => {
  it('round-trips every dtype, 0-dim and empty tensors included', async () => {
    const dtypes = Object.keys(DTYPE_BYTES) as Dtype[];
    const tensors: TensorToWrite[] = [];
    dtypes.forEach((dtype, i) => {
      const shape = [[3, 5], [7], [], [0, 4], [2, 1, 3]][i % 5];
      const numel = shape.reduce((a, b) => a * b, 1);
      tensors.push({ name: `t.${dtype}`, dtype, shape, data: randomBytes(numel * DTYPE_BYTES[dtype], i + 1) });
    });
    const bytes = await writeSafetensorsToBytes(tensors, { producer: 'test' });
    expect(bytes.length).toBe(safetensorsFileSize(tensors, { producer: 'test' }));
    const st = await open(bytes);
    expect(st.metadata).toEqual({ format: 'pt', producer: 'test' });
    // Written in the order given: file order equals input order.
    expect(st.tensors.map((t) => t.name)).toEqual(tensors.map((t) => t.name));
    for (const t of tensors) {
      const info = st.get(t.name);
      expect(info.dtype).toBe(t.dtype);
      expect(info.shape).toEqual(t.shape);
      expect(await st.read(t.name)).toEqual(t.data);
    }
  });

  it('readF32 converts F32, F16, BF16 and F64', async () => {
    const vals = [0, 1, -2.5, 0.1, 65504, -1e-6];
    const f32 = new Float32Array(vals);
    const f64 = new Float64Array(vals);
    const f16 = new Uint16Array(vals.map(f32ToF16Bits));
    const bf16 = new Uint16Array(vals.map(f32ToBf16Bits));
    const st = await open(
      await writeSafetensorsToBytes([
        { name: 'f32', dtype: 'F32', shape: [6], data: new Uint8Array(f32.buffer) },
        { name: 'f16', dtype: 'F16', shape: [2, 3], data: u16ToBytesLE(f16) },
        { name: 'bf16', dtype: 'BF16', shape: [6], data: u16ToBytesLE(bf16) },
        { name: 'f64', dtype: 'F64', shape: [6], data: new Uint8Array(f64.buffer) },
      ]),
    );
    expect([...(await st.readF32('f32'))]).toEqual([...f32]);
    expect([...(await st.readF32('f64'))]).toEqual([...f32]);
    const h = await st.readF32('f16');
    vals.forEach((v, i) => expect(h[i]).toBeCloseTo(v, Math.abs(v) > 1000 ? 0 : 3));
    const b = await st.readF32('bf16');
    vals.forEach((v, i) => expect(Math.abs(b[i] - v)).toBeLessThanOrEqual(Math.abs(v) / 128));
  });

  it('pads the header with spaces to a multiple of 8, for every residue', async () => {
    for (let len = 1; len <= 9; len++) {
      const name = 'x'.repeat(len);
      const bytes = await writeSafetensorsToBytes([{ name, dtype: 'U8', shape: [1], data: new Uint8Array([1]) }]);
      const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
      expect(n % 8).toBe(0);
      const json = new TextDecoder().decode(bytes.subarray(8, 8 + n));
      const trimmed = json.trimEnd();
      expect(json.length - trimmed.length).toBeLessThan(8);
      expect(/^ *$/.test(json.slice(trimmed.length))).toBe(true);
      expect(JSON.parse(json)[name]).toEqual({ dtype: 'U8', shape: [1], data_offsets: [0, 1] });
      expect(bytes.length).toBe(8 + n + 1);
    }
  });

  it('keeps the given order for integer-like names, and rejects bad tensor lists', async () => {
    const bytes = await writeSafetensorsToBytes([
      { name: 'b', dtype: 'U8', shape: [1], data: new Uint8Array([1]) },
      { name: '10', dtype: 'U8', shape: [1], data: new Uint8Array([2]) },
      { name: '2', dtype: 'U8', shape: [1], data: new Uint8Array([3]) },
    ]);
    expect((await open(bytes)).tensors.map((t) => t.name)).toEqual(['b', '10', '2']);
    const one = { dtype: 'U8' as const, shape: [1], data: new Uint8Array([1]) };
    await expectError(writeSafetensorsToBytes([{ name: 'a', ...one }, { name: 'a', ...one }]), /"a" is listed twice/);
    await expectError(writeSafetensorsToBytes([{ name: '__metadata__', ...one }]), /not allowed/);
    await expectError(writeSafetensorsToBytes([{ name: 'a', ...one, dtype: 'X' as Dtype }]), /unknown dtype "X"/);
    await expectError(writeSafetensorsToBytes([{ name: 'a', ...one, shape: [-1] }]), /shape\[0\] = -1/);
    await expectError(writeSafetensorsToBytes([{ name: 'a', ...one, shape: [2] }]), /"a": data is 1 bytes, U8\[2\] needs 2/);
  });

  it('streams: the header first, each lazy tensor produced only when its turn comes', async () => {
    const log: string[] = [];
    const tensors: TensorToWrite[] = ['a', 'b', 'c'].map((name, i) => ({
      name,
      dtype: 'F32',
      shape: [4],
      data: async () => {
        log.push(`make ${name}`);
        return new Uint8Array(new Float32Array([i, i, i, i]).buffer);
      },
    }));
    const it = writeSafetensors(tensors);
    const header = (await it.next()).value as Uint8Array;
    expect(header).toEqual(buildSafetensorsHeader(tensors));
    expect(log).toEqual([]);
    await it.next();
    expect(log).toEqual(['make a']);
    await it.next();
    expect(log).toEqual(['make a', 'make b']);
    await it.next();
    expect((await it.next()).done).toBe(true);

    // The same through a ReadableStream.
    const reader = safetensorsStream(tensors).getReader();
    const parts: Uint8Array[] = [];
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      parts.push(value);
    }
    expect(parts.length).toBe(4);
    const all = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
    let o = 0;
    for (const p of parts) {
      all.set(p, o);
      o += p.length;
    }
    const st = await open(all);
    expect([...(await st.readF32('c'))]).toEqual([2, 2, 2, 2]);

    // A lazy tensor of the wrong size fails the stream with a clear error.
    const bad: TensorToWrite[] = [{ name: 'x', dtype: 'F32', shape: [2], data: () => new Uint8Array(4) }];
    await expectError(writeSafetensorsToBytes(bad), /"x": data is 4 bytes, F32\[2\] needs 8/);
  });

  it('reads ranges and chunks of a tensor', async () => {
    const data = randomBytes(4 * 1000, 9);
    const st = await open(await writeSafetensorsToBytes([{ name: 'w', dtype: 'F32', shape: [10, 100], data }]));
    expect(await st.readRange('w', 400, 40)).toEqual(data.subarray(400, 440));
    const chunks: Uint8Array[] = [];
    for await (const c of st.readChunks('w', 1001)) chunks.push(c);
    expect(chunks.map((c) => c.length)).toEqual([1000, 1000, 1000, 1000]); // whole elements
    expect(chunks[3]).toEqual(data.subarray(3000));
    await expectError(() => st.readRange('w', 3990, 20), /range 3990\+20 outside its 4000 bytes/);
  });

  it('reads a header longer than the prefetch in a second read', async () => {
    const tensors: TensorToWrite[] = [];
    for (let i = 0; i < 50; i++) tensors.push({ name: `layer.${i}.weight`, dtype: 'U8', shape: [i % 3], data: new Uint8Array(i % 3).fill(i) });
    const bytes = await writeSafetensorsToBytes(tensors);
    const reads: [number, number][] = [];
    const src: ByteSource = {
      size: bytes.length,
      name: 'counted',
      read: async (o, l) => {
        reads.push([o, l]);
        return bytes.slice(o, o + l);
      },
    };
    const st = await openSafetensors(src, { prefetchBytes: 100 });
    expect(reads).toEqual([
      [0, 100],
      [100, st.dataOffset - 100],
    ]);
    expect([...(await st.read('layer.49.weight'))]).toEqual([49]);
    // With the default prefetch the whole header comes in one read.
    reads.length = 0;
    await openSafetensors(src);
    expect(reads.length).toBe(1);
  });
});

describe('safetensors: malformed files give clear errors', () => {
  const good = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';
  const d8 = new Array(8).fill(0);
  const cases: [string, Uint8Array, RegExp][] = [
    ['empty file', new Uint8Array(0), /file is 0 bytes, too short for the 8-byte header length/],
    ['truncated inside the length', new Uint8Array([1, 0, 0]), /file is 3 bytes, too short/],
    ['header length past EOF', handFile(good, d8, 10_000n), /header length 10000 goes past the end of the file/],
    ['huge header length', handFile(good, d8, 1n << 62n), new RegExp(`exceeds the limit of ${MAX_HEADER_BYTES} bytes`)],
    ['header length just over the limit', handFile(good, d8, BigInt(MAX_HEADER_BYTES + 1)), /exceeds the limit/],
    ['truncated data', handFile(good, [0, 0, 0]), /"a": data_offsets \[0, 8\] go past the end of the data \(3 bytes; truncated file\?\)/],
    ['invalid UTF-8', handFile(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])), /header is not valid UTF-8/],
    ['invalid JSON', handFile('{"a":{"dtype":"F32",', d8), /header is not valid JSON/],
    ['not an object (array)', handFile('[1,2,3]'), /header must be a JSON object/],
    ['not an object (string)', handFile('"abc"'), /header must be a JSON object/],
    ['BOM before the object', handFile('\ufeff{}'), /header must be a JSON object/],
    ['tensor entry not an object', handFile('{"a":5}'), /tensor "a": entry must be an object, got number/],
    ['bad dtype', handFile('{"a":{"dtype":"F17","shape":[2],"data_offsets":[0,8]}}', d8), /tensor "a": unknown dtype "F17"/],
    ['sub-byte dtype', handFile('{"a":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}}', [0]), /dtype F4 \(sub-byte\) is not supported/],
    ['missing dtype', handFile('{"a":{"shape":[2],"data_offsets":[0,8]}}', d8), /"a": dtype missing/],
    ['negative shape', handFile('{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}', d8), /"a": shape\[0\] = -2 is not a non-negative integer/],
    ['float shape', handFile('{"a":{"dtype":"F32","shape":[1.5,2],"data_offsets":[0,8]}}', d8), /"a": shape\[0\] = 1.5/],
    ['string shape', handFile('{"a":{"dtype":"F32","shape":"2","data_offsets":[0,8]}}', d8), /"a": shape must be an array/],
    ['shape overflow', handFile('{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}', d8), /overflows/],
    ['size mismatch', handFile('{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', d8), /"a": data_offsets \[0, 8\] span 8 bytes, but F32\[3\] needs 12/],
    ['bad data_offsets', handFile('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}}', d8), /"a": data_offsets must be an array \[begin, end\]/],
    ['negative offsets', handFile('{"a":{"dtype":"U8","shape":[0],"data_offsets":[-1,-1]}}'), /must be non-negative integers/],
    ['end before begin', handFile('{"a":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}}', [0, 0, 0, 0]), /end before begin/],
    [
      'overlapping offsets',
      handFile('{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}', [1, 2, 3, 4, 5, 6]),
      /tensor "b" \(bytes 2\.\.6\) overlaps tensor "a" \(bytes 0\.\.4\)/,
    ],
    [
      'gap between tensors',
      handFile('{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}}', [1, 2, 3, 4, 5, 6]),
      /gap of 2 bytes in the data before tensor "b"/,
    ],
    ['gap at the start', handFile('{"a":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}}', [1, 2, 3]), /gap of 1 bytes in the data before tensor "a"/],
    ['offsets past end', handFile('{"a":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}}', [1, 2, 3, 4]), /"a": data_offsets \[4, 8\] go past the end of the data \(4 bytes/],
    ['trailing bytes not covered', handFile(good, new Array(12).fill(0)), /tensors cover 8 bytes of data but the file holds 12 after the header/],
    ['metadata not strings', handFile('{"__metadata__":{"format":1}}'), /__metadata__\["format"\] must be a string, got number/],
    ['metadata not an object', handFile('{"__metadata__":[1]}'), /__metadata__ must be an object of strings/],
    [
      'duplicate tensor name',
      handFile('{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}', [1, 2]),
      /header lists "a" twice/,
    ],
  ];
  for (const [what, bytes, pattern] of cases) {
    it(what, async () => {
      const err = await expectError(open(bytes, 'bad.safetensors'), pattern);
      expect(err.message.startsWith('bad.safetensors: ')).toBe(true);
    });
  }

  it('accepts a header with no tensors and null metadata', async () => {
    const st = await open(handFile('{"__metadata__":null}'));
    expect(st.tensors).toEqual([]);
    expect(st.metadata).toEqual({});
  });

  it('a source that returns short reads is reported', async () => {
    const bytes = await writeSafetensorsToBytes([{ name: 'a', dtype: 'U8', shape: [4], data: new Uint8Array(4) }]);
    const src: ByteSource = { size: bytes.length, name: 'short', read: async (o, l) => bytes.slice(o, o + Math.max(0, l - 1)) };
    await expectError(openSafetensors(src), /short: short read/);
  });
});

describe('safetensors: Blob / File source', () => {
  it('reads through Blob.slice and takes a File name', async () => {
    const data = randomBytes(3 * 2 * 64, 4);
    const bytes = await writeSafetensorsToBytes([
      { name: 'x', dtype: 'BF16', shape: [3, 64], data },
      { name: 'y', dtype: 'I64', shape: [1], data: new Uint8Array(8).fill(1) },
    ]);
    const st = await openSafetensors(blobSource(new Blob([bytes])));
    expect(st.name).toBe('blob');
    expect(await st.read('x')).toEqual(data);
    const file = new File([bytes], 'dropped.safetensors');
    const st2 = await openSafetensors(blobSource(file));
    expect(st2.name).toBe('dropped.safetensors');
    expect(st2.get('y').file).toBe('dropped.safetensors');
    expect([...(await st2.read('y'))]).toEqual(new Array(8).fill(1));
    // A truncated Blob is caught at open.
    await expectError(openSafetensors(blobSource(new Blob([bytes.subarray(0, bytes.length - 1)]), 'cut')), /cut: .*"y".*past the end/);
  });
});

describe('safetensors: HTTP Range source (real node:http server)', () => {
  let server: Server;
  let base = '';
  const files = new Map<string, Uint8Array>();
  const log: string[] = [];

  beforeAll(async () => {
    server = createServer((req: IncomingMessage, res: ServerResponse) => {
      const path = req.url ?? '';
      const range = req.headers.range;
      log.push(`${path} ${range ?? '-'}`);
      const body = files.get(path.replace('/norange', ''));
      if (body === undefined) {
        res.writeHead(404).end('not found');
        return;
      }
      if (path.startsWith('/norange') || range === undefined) {
        res.writeHead(200, { 'Content-Length': body.length }).end(body);
        return;
      }
      const m = /^bytes=(\d+)-(\d+)$/.exec(range);
      if (m === null) {
        res.writeHead(400).end();
        return;
      }
      const start = Number(m[1]);
      const end = Math.min(Number(m[2]), body.length - 1);
      if (start >= body.length) {
        res.writeHead(416, { 'Content-Range': `bytes */${body.length}` }).end();
        return;
      }
      res.writeHead(206, { 'Content-Range': `bytes ${start}-${end}/${body.length}`, 'Content-Length': end - start + 1 });
      res.end(body.subarray(start, end + 1));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('opens with a probe when the size is unknown, then reads tensors by range', async () => {
    const big = randomBytes(200_000, 11);
    const bytes = await writeSafetensorsToBytes([
      { name: 'small', dtype: 'F32', shape: [4], data: new Uint8Array(new Float32Array([1, 2, 3, 4]).buffer) },
      { name: 'big', dtype: 'U8', shape: [200_000], data: big },
    ]);
    files.set('/m/model.safetensors', bytes);
    log.length = 0;
    const src = await httpSource(`${base}/m/model.safetensors`);
    expect(src.size).toBe(bytes.length);
    const st = await openSafetensors(src);
    expect(log).toEqual(['/m/model.safetensors bytes=0-65535']); // one request: probe reused for the header
    expect([...(await st.readF32('small'))]).toEqual([1, 2, 3, 4]); // inside the probe: no request
    expect(log.length).toBe(1);
    expect(await st.read('big')).toEqual(big);
    expect(log[1]).toBe(`/m/model.safetensors bytes=${st.get('big').fileOffset}-${bytes.length - 1}`);
    let got = 0;
    for await (const c of st.readChunks('big', 65536)) {
      expect(c).toEqual(big.subarray(got, got + c.length));
      got += c.length;
    }
    expect(got).toBe(200_000);
  });

  it('with a known size, makes no request until the header is read; small files probe short', async () => {
    const bytes = await writeSafetensorsToBytes([{ name: 't', dtype: 'I32', shape: [2], data: new Uint8Array([1, 0, 0, 0, 2, 0, 0, 0]) }]);
    files.set('/tiny.safetensors', bytes);
    log.length = 0;
    const known = await httpSource(`${base}/tiny.safetensors`, { size: bytes.length, name: 'tiny' });
    expect(log).toEqual([]);
    const st = await openSafetensors(known);
    expect(log).toEqual([`/tiny.safetensors bytes=0-${bytes.length - 1}`]);
    expect([...(await st.read('t'))]).toEqual([1, 0, 0, 0, 2, 0, 0, 0]);
    // Unknown size: the probe asks for 64 KiB, the server clamps to the file: still fine.
    const probed = await openSafetensors(await httpSource(`${base}/tiny.safetensors`));
    expect(probed.get('t').shape).toEqual([2]);
  });

  it('takes a pluggable fetchRange (the Hub client) and reports HTTP failures', async () => {
    const calls: string[] = [];
    const plain = rangeFetcher();
    const hubLike = async (url: string, offset: number, length: number) => {
      calls.push(`${offset}+${length}`);
      return plain(url.replace('hub://', `${base}/`), offset, length);
    };
    const src = await httpSource('hub://tiny.safetensors', { fetchRange: hubLike, size: files.get('/tiny.safetensors')!.length });
    await (await openSafetensors(src)).read('t');
    expect(calls).toEqual([`0+${src.size}`]); // the header read covered the tiny file: one request

    await expectError(httpSource(`${base}/missing.safetensors`), /missing\.safetensors: bytes 0-65535: expected 206 Partial Content, HTTP 404/);
    await expectError(httpSource(`${base}/norange/tiny.safetensors`), /the server ignored the Range header/);
    // Size claimed larger than the file: the ranged read comes back short.
    const wrong = await httpSource(`${base}/tiny.safetensors`, { size: 100_000 });
    await expectError(openSafetensors(wrong), /asked for 65536 bytes at 0, got \d+/);
  });
});

describe('safetensors: sharding and the index', () => {
  const tensors: TensorToWrite[] = [];
  for (let i = 0; i < 5; i++) {
    tensors.push({ name: `model.layers.${i}.w`, dtype: 'BF16', shape: [10, 10], data: randomBytes(200, 100 + i) });
  }
  tensors.push({ name: 'lm_head.weight', dtype: 'F32', shape: [30, 10], data: randomBytes(1200, 7) }); // over the limit alone

  it('plans shards under a byte limit and builds the index', () => {
    const plan = planShards(tensors, 450);
    expect(plan.shards.map((s) => s.tensors.map((t) => t.name))).toEqual([
      ['model.layers.0.w', 'model.layers.1.w'],
      ['model.layers.2.w', 'model.layers.3.w'],
      ['model.layers.4.w'],
      ['lm_head.weight'],
    ]);
    expect(plan.shards.map((s) => s.fileName)).toEqual([1, 2, 3, 4].map((i) => `model-0000${i}-of-00004.safetensors`));
    expect(plan.shards.map((s) => s.tensorBytes)).toEqual([400, 400, 200, 1200]);
    expect(plan.index!.metadata).toEqual({ total_size: 2200, total_parameters: 800 });
    expect(Object.keys(plan.index!.weight_map)).toEqual([...tensors.map((t) => t.name)].sort());
    expect(plan.index!.weight_map['lm_head.weight']).toBe('model-00004-of-00004.safetensors');
    expect(shardFileName(0, 3)).toBe('model-00001-of-00003.safetensors');
    // Everything in one file: model.safetensors, no index.
    const single = planShards(tensors);
    expect(single.index).toBeNull();
    expect(single.shards).toHaveLength(1);
    expect(single.shards[0].fileName).toBe('model.safetensors');
  });

  it('round-trips: write shards + index, parse the index, read every tensor back', async () => {
    const plan = planShards(tensors, 450);
    const store = new Map<string, Uint8Array>();
    for (const s of plan.shards) store.set(s.fileName, await writeSafetensorsToBytes(s.tensors));
    const text = formatShardIndex(plan.index!);
    expect(text.endsWith('}\n')).toBe(true);
    const index = parseShardIndex(text);
    expect(index.totalSize).toBe(2200);
    expect(index.files).toEqual(plan.shards.map((s) => s.fileName));
    expect(index.weightMap.get('model.layers.3.w')).toBe('model-00002-of-00004.safetensors');
    const opened: string[] = [];
    const sharded = await openShardedSafetensors(index, async (f) => {
      opened.push(f);
      return bytesSource(store.get(f)!);
    });
    expect(opened.sort()).toEqual(index.files);
    expect(sharded.tensors.map((t) => t.name).sort()).toEqual(tensors.map((t) => t.name).sort());
    expect(sharded.get('lm_head.weight').file).toBe('model-00004-of-00004.safetensors');
    for (const t of tensors) expect(await sharded.read(t.name)).toEqual(t.data);
    expect((await sharded.readF32('lm_head.weight')).length).toBe(300);
    await expectError(() => sharded.get('nope'), /no tensor named "nope"/);
  });

  it('rejects a malformed index', () => {
    const wm = (m: unknown) => JSON.stringify({ metadata: { total_size: 10 }, weight_map: m });
    expectErrorSync(() => parseShardIndex('{'), /model\.safetensors\.index\.json: not valid JSON/);
    expectErrorSync(() => parseShardIndex('[]'), /must be a JSON object/);
    expectErrorSync(() => parseShardIndex('{"metadata":{}}'), /"weight_map" must be an object/);
    expectErrorSync(() => parseShardIndex(wm({})), /weight_map is empty/);
    expectErrorSync(() => parseShardIndex(wm({ a: 5 })), /weight_map\["a"\] must be a file name, got number/);
    expectErrorSync(() => parseShardIndex(wm({ a: '../x.safetensors' })), /not a plain relative \.safetensors file name/);
    expectErrorSync(() => parseShardIndex(wm({ a: '/etc/x.safetensors' })), /not a plain relative/);
    expectErrorSync(() => parseShardIndex(wm({ a: 'https://evil/x.safetensors' })), /not a plain relative/);
    expectErrorSync(() => parseShardIndex(wm({ a: 'x.bin' })), /not a plain relative/);
    expectErrorSync(() => parseShardIndex({ metadata: { total_size: -1 }, weight_map: { a: 'x.safetensors' } }), /total_size must be a non-negative integer/);
    expectErrorSync(() => parseShardIndex({ metadata: 3, weight_map: { a: 'x.safetensors' } }), /"metadata" must be an object/);
    // Without metadata it is still usable.
    expect(parseShardIndex(new TextEncoder().encode('{"weight_map":{"a":"x.safetensors"}}')).totalSize).toBeNull();
  });

  it('rejects an index that disagrees with its shards', async () => {
    const a = await writeSafetensorsToBytes([tensors[0], tensors[1]]);
    const store = new Map([['a.safetensors', a]]);
    const openShard = async (f: string) => bytesSource(store.get(f)!, f);
    const missing = parseShardIndex({ weight_map: { [tensors[0].name]: 'a.safetensors', ghost: 'a.safetensors', [tensors[1].name]: 'a.safetensors' } });
    await expectError(openShardedSafetensors(missing, openShard), /maps tensor "ghost" to a\.safetensors, which does not contain it/);
    const unlisted = parseShardIndex({ weight_map: { [tensors[0].name]: 'a.safetensors' } });
    await expectError(openShardedSafetensors(unlisted, openShard), /a\.safetensors: holds tensor "model\.layers\.1\.w", which .* does not list/);
  });
});

function expectErrorSync(f: () => unknown, pattern: RegExp): void {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(SafetensorsError);
  expect((err as Error).message).toMatch(pattern);
}
