// Quantization and LoRA merging in a pool of workers (browser: module Workers spawned by the trainer
// worker; Node: worker_threads), so that a k-quant export neither freezes anything nor runs on one
// core.
//
// Every tensor is cut into pieces at block boundaries (quantize) or row boundaries (merge); the
// pieces run on whichever worker is free and are put back in order. ggml's quantizers treat each
// block on its own and mergeLora each row on its own, and the workers run the very same functions,
// so the bytes equal quantize() / mergeLora() on one thread (tests/export-pool.test.ts checks).
//
// Where memory can be shared (Node; a cross-origin isolated page), the pieces are views of one
// SharedArrayBuffer: a merged tensor is copied in once and merged in place, and quantizing it (or
// its row chunks) reads it where it is and writes the bytes in place, so this thread copies a
// merged weight once instead of three times (sliced out, copied back, sliced out again to be
// quantized). Without it, pieces are copied out and transferred. A worker holds up to two pieces,
// so that it never waits for this thread (busy reading the next tensor) to hand it the next one.

import { mergedWeights, mergeLora, MergeError } from './merge.ts';
import type { LoraAdapter } from './peft.ts';
import { quantize, requireGgmlType } from './quants/index.ts';
import type { ExportArch, WeightSource } from './export-arch.ts';
import type { GgufTensorToWrite } from './gguf.ts';

/** A piece of work. `dst` (quantize) and a shared `w` (merge) are views of shared memory that the
 * worker writes in place; otherwise the result comes back in the reply. */
export type QuantTask =
  | { id: number; op: 'quantize'; type: number; src: Float32Array; dst?: Uint8Array }
  | { id: number; op: 'merge'; w: Float32Array; a: Float32Array; b: Float32Array; rows: number; cols: number; r: number; scale: number };

/** `out` is null when the result was written into shared memory. */
export type QuantReply = { id: number; out: Uint8Array | Float32Array | null } | { id: number; error: string };

/** Whether typed arrays over SharedArrayBuffer can be posted to workers here. */
export function sharedMemoryAvailable(): boolean {
  return typeof SharedArrayBuffer === 'function' && (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated !== false;
}

function isShared(a: ArrayBufferView): boolean {
  return typeof SharedArrayBuffer === 'function' && a.buffer instanceof SharedArrayBuffer;
}

/** `a` itself when it already lives in shared memory, else a copy that does. */
function sharedF32(a: Float32Array): Float32Array {
  if (isShared(a)) return a;
  const s = new Float32Array(new SharedArrayBuffer(a.byteLength));
  s.set(a);
  return s;
}

/**
 * A few shared buffers the pool used for itself (a copy of what it quantizes, the bytes before
 * they are copied out), kept for the next call of the same size: tensors of a model come in a
 * handful of sizes, and a fresh big buffer costs more (the system zeroes its pages on first touch)
 * than the copy into it. Contents are left as they were: every byte gets written again. At most
 * 512 MiB are kept, none over 256 MiB (a whole embedding is not worth keeping).
 */
class SpareBuffers {
  private readonly spare: SharedArrayBuffer[] = [];
  private bytes = 0;
  take(bytes: number): SharedArrayBuffer {
    const at = this.spare.findIndex((b) => b.byteLength === bytes);
    if (at < 0) return new SharedArrayBuffer(bytes);
    this.bytes -= bytes;
    return this.spare.splice(at, 1)[0];
  }
  give(b: SharedArrayBuffer): void {
    if (b.byteLength > 1 << 28) return;
    this.spare.push(b);
    this.bytes += b.byteLength;
    while (this.bytes > 1 << 29) this.bytes -= this.spare.shift()!.byteLength;
  }
}

/** What a pool worker does with one task (workers/quant.worker.ts, quant-pool-node-worker.ts). */
export function runQuantTask(task: QuantTask): { reply: QuantReply; transfer: ArrayBuffer[] } {
  try {
    if (task.op === 'quantize') {
      if (task.dst) {
        quantize(task.type, task.src, task.dst);
        return { reply: { id: task.id, out: null }, transfer: [] };
      }
      const out = quantize(task.type, task.src);
      return { reply: { id: task.id, out }, transfer: [out.buffer as ArrayBuffer] };
    }
    // In place: a transferred piece is this worker's own, a shared one is this task's rows only.
    const out = mergeLora(task.w, task.a, task.b, task.rows, task.cols, task.r, task.scale, task.w);
    if (isShared(out)) return { reply: { id: task.id, out: null }, transfer: [] };
    return { reply: { id: task.id, out }, transfer: [out.buffer as ArrayBuffer] };
  } catch (e) {
    return { reply: { id: task.id, error: (e as Error).message ?? String(e) }, transfer: [] };
  }
}

/** One worker as the pool sees it (a Web Worker or a worker_threads Worker behind it). */
export interface PoolWorker {
  post(task: QuantTask, transfer: ArrayBuffer[]): void;
  terminate(): void;
}

/** Starts one worker whose replies go to `onReply` and whose crash goes to `onError`. */
export type SpawnPoolWorker = (onReply: (r: QuantReply) => void, onError: (e: Error) => void) => PoolWorker;

export interface QuantPoolOptions {
  /** Largest piece sent to a worker, in elements (default 2^22). */
  maxPieceElements?: number;
  /** Smallest piece worth a message, in elements (default 2^16): smaller tensors run right here. */
  minPieceElements?: number;
  /** Pieces as views of shared memory (default: where sharedMemoryAvailable()). The workers must
   * be able to receive SharedArrayBuffers (worker_threads, or Workers of an isolated page). */
  sharedMemory?: boolean;
  /** Pieces posted to a worker before it answers (default 2): a worker that finishes one starts
   * the next at once, without waiting for this thread to see its answer. */
  perWorker?: number;
}

interface Job {
  task: QuantTask;
  transfer: ArrayBuffer[];
  resolve: (out: Uint8Array | Float32Array | null) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: PoolWorker;
  /** Posted, not answered yet (the worker runs them in order). */
  jobs: Job[];
}

export class QuantPoolClosedError extends Error {
  override name = 'AbortError';
}

export class QuantPool {
  readonly size: number;
  private readonly workers: Slot[] = [];
  private readonly queue: Job[] = [];
  private nextId = 1;
  /** Pieces the workers have finished (how much went through the pool, for tests and benches). */
  completed = 0;
  private failure: Error | null = null;
  private readonly maxPiece: number;
  private readonly minPiece: number;
  /** Pieces are views of shared memory (see the top of this file). */
  readonly shared: boolean;
  private readonly perWorker: number;
  private readonly spare = new SpareBuffers();

  constructor(spawn: SpawnPoolWorker, size: number, opts: QuantPoolOptions = {}) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`a quantization pool needs at least one worker, got ${size}`);
    this.size = size;
    this.maxPiece = opts.maxPieceElements ?? 1 << 22;
    this.minPiece = opts.minPieceElements ?? 1 << 16;
    this.shared = opts.sharedMemory ?? sharedMemoryAvailable();
    this.perWorker = Math.max(1, opts.perWorker ?? 2);
    for (let i = 0; i < size; i++) {
      const slot: Slot = { worker: null as unknown as PoolWorker, jobs: [] };
      slot.worker = spawn(
        (reply) => this.settle(slot, reply),
        (e) => this.fail(new Error(`A quantization worker stopped: ${e.message}`)),
      );
      this.workers.push(slot);
    }
  }

  /** quantize(type, src), in pieces across the workers. */
  async quantize(type: number, src: Float32Array): Promise<Uint8Array> {
    const info = requireGgmlType(type);
    const n = src.length;
    // Small (or malformed: quantize() says why): not worth a message.
    if (n % info.blockSize !== 0 || n < this.minPiece) return quantize(type, src);
    const blocks = n / info.blockSize;
    const piece = this.pieceSize(n, info.blockSize);
    if (this.shared) {
      const copied = !isShared(src);
      const s = copied ? new Float32Array(this.spare.take(src.byteLength)) : src;
      if (copied) s.set(src);
      const out = new Uint8Array(this.spare.take(blocks * info.typeSize));
      const parts: Promise<unknown>[] = [];
      for (let start = 0; start < n; start += piece) {
        const end = Math.min(n, start + piece);
        const dst = out.subarray((start / info.blockSize) * info.typeSize, (end / info.blockSize) * info.typeSize);
        parts.push(this.submit({ id: 0, op: 'quantize', type, src: s.subarray(start, end), dst }, []));
      }
      await Promise.all(parts);
      // An ordinary buffer for whoever gets the bytes (a file stream may refuse shared memory).
      const bytes = out.slice();
      if (copied) this.spare.give(s.buffer as SharedArrayBuffer);
      this.spare.give(out.buffer as SharedArrayBuffer);
      return bytes;
    }
    const parts: Promise<Uint8Array>[] = [];
    for (let start = 0; start < n; start += piece) {
      const end = Math.min(n, start + piece);
      const part = src.slice(start, end);
      parts.push(this.submit({ id: 0, op: 'quantize', type, src: part }, [part.buffer]) as Promise<Uint8Array>);
    }
    const out = new Uint8Array(blocks * info.typeSize);
    let o = 0;
    for (const p of await Promise.all(parts)) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }

  /** Whether the workers can read `a` where it is (shared memory): quantizing it costs this
   * thread no copy. */
  holds(a: ArrayBufferView): boolean {
    return this.shared && isShared(a);
  }

  /** mergeLora(w, a, b, rows, cols, r, scale) in row pieces across the workers (a new array; in
   * shared memory when the pool shares memory, ready for quantize() without a copy). */
  async merge(w: Float32Array, a: Float32Array, b: Float32Array, rows: number, cols: number, r: number, scale: number): Promise<Float32Array> {
    if (w.length !== rows * cols || a.length !== r * cols || b.length !== rows * r) {
      return mergeLora(w, a, b, rows, cols, r, scale); // throws the MergeError that says which shape is off
    }
    if (w.length < this.minPiece) return mergeLora(w, a, b, rows, cols, r, scale);
    const rowsPer = Math.max(1, Math.floor(this.pieceSize(w.length, 1) / cols));
    if (this.shared) {
      const out = new Float32Array(new SharedArrayBuffer(w.byteLength));
      out.set(w);
      const sa = sharedF32(a);
      const sb = sharedF32(b);
      const parts: Promise<unknown>[] = [];
      for (let start = 0; start < rows; start += rowsPer) {
        const count = Math.min(rowsPer, rows - start);
        const task: QuantTask = { id: 0, op: 'merge', w: out.subarray(start * cols, (start + count) * cols), a: sa, b: sb.subarray(start * r, (start + count) * r), rows: count, cols, r, scale };
        parts.push(this.submit(task, []));
      }
      await Promise.all(parts);
      return out;
    }
    const parts: Promise<Float32Array>[] = [];
    for (let start = 0; start < rows; start += rowsPer) {
      const count = Math.min(rowsPer, rows - start);
      const task = {
        id: 0,
        op: 'merge' as const,
        w: w.slice(start * cols, (start + count) * cols),
        a: a.slice(),
        b: b.slice(start * r, (start + count) * r),
        rows: count,
        cols,
        r,
        scale,
      };
      parts.push(this.submit(task, [task.w.buffer, task.a.buffer, task.b.buffer]) as Promise<Float32Array>);
    }
    const out = new Float32Array(w.length);
    let o = 0;
    for (const p of await Promise.all(parts)) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }

  /** Stops the workers; work not yet done rejects with an AbortError. */
  close(reason = 'The export was stopped.'): void {
    this.fail(new QuantPoolClosedError(reason));
    for (const s of this.workers) s.worker.terminate();
  }

  /** Pieces of about n / (2 * size) elements (two per worker keeps them all busy to the end),
   * within [minPiece, maxPiece], in whole blocks. */
  private pieceSize(n: number, block: number): number {
    const want = Math.min(this.maxPiece, Math.max(this.minPiece, Math.ceil(n / (2 * this.size))));
    return Math.max(block, Math.ceil(want / block) * block);
  }

  private submit(task: QuantTask, transfer: ArrayBuffer[]): Promise<Uint8Array | Float32Array | null> {
    if (this.failure) return Promise.reject(this.failure);
    task.id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.queue.push({ task, transfer, resolve, reject });
      this.dispatch();
    });
  }

  /** Idle workers first, then each one's next piece. */
  private dispatch(): void {
    for (let depth = 1; depth <= this.perWorker; depth++) {
      for (const slot of this.workers) {
        if (this.queue.length === 0) return;
        if (slot.jobs.length >= depth) continue;
        const job = this.queue.shift()!;
        slot.jobs.push(job);
        slot.worker.post(job.task, job.transfer);
      }
    }
  }

  private settle(slot: Slot, reply: QuantReply): void {
    const at = slot.jobs.findIndex((j) => j.task.id === reply.id);
    if (at < 0) return; // a reply after close()
    const job = slot.jobs[at];
    slot.jobs.splice(at, 1);
    this.completed++;
    if ('error' in reply) job.reject(job.task.op === 'merge' ? new MergeError(reply.error) : new Error(reply.error));
    else job.resolve(reply.out);
    this.dispatch();
  }

  private fail(e: Error): void {
    if (this.failure) return;
    this.failure = e;
    for (const s of this.workers) for (const j of s.jobs.splice(0)) j.reject(e);
    for (const j of this.queue.splice(0)) j.reject(e);
  }
}

/** mergedWeights (src/io/merge.ts) with each merge run in the pool: the same values. */
export function pooledMergedWeights(arch: ExportArch, base: WeightSource, adapter: LoraAdapter, pool: QuantPool): WeightSource {
  return mergedWeights(arch, base, adapter, (w, a, b, rows, cols, r, scale) => pool.merge(w, a, b, rows, cols, r, scale));
}

/**
 * The same tensors, each one's data started ahead of the writer: when it asks for a tensor, the
 * tensors after it are started up to and including the `ahead`-th that has at least 2^16
 * elements (smaller ones, the norms, do not count), so that reading and merging the next big
 * tensor overlaps quantizing this one. A tensor made in pieces (row chunks) starts making its
 * first piece then too. Results wait in order; a failure surfaces when the writer reaches that
 * tensor.
 */
export function prefetchTensors(tensors: readonly GgufTensorToWrite[], ahead = 1): GgufTensorToWrite[] {
  return prefetchData(tensors, (t) => t.ne.reduce((a, b) => a * b, 1), ahead);
}

const PREFETCH_BIG = 1 << 16;

/** prefetchTensors for anything with a `data` made on demand (GGUF or safetensors tensors); `size`
 * tells big items from small ones. */
export function prefetchData<T extends { readonly data: unknown }>(items: readonly T[], size: (t: T) => number, ahead = 1): T[] {
  const started: (Promise<unknown> | undefined)[] = new Array(items.length);
  const start = (i: number): void => {
    const t = items[i];
    if (typeof t.data !== 'function' || started[i]) return;
    const p = Promise.resolve()
      .then(t.data as () => unknown)
      .then((d) => (d instanceof Uint8Array || !isAsyncIterable(d) ? d : startedIterable(d)));
    p.catch(() => undefined); // seen when the writer gets here
    started[i] = p;
  };
  return items.map((t, i) =>
    typeof t.data !== 'function'
      ? t
      : {
          ...t,
          data: () => {
            start(i);
            const mine = started[i]!;
            for (let k = i + 1, big = 0; k < items.length && big < ahead; k++) {
              start(k);
              if (size(items[k]) >= PREFETCH_BIG) big++;
            }
            started[i] = undefined; // let the bytes go once written
            return mine;
          },
        },
  );
}

function isAsyncIterable(d: unknown): d is AsyncIterable<Uint8Array> {
  return typeof d === 'object' && d !== null && Symbol.asyncIterator in d;
}

/** The same pieces, the first one asked for now. */
function startedIterable(pieces: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
  const it = pieces[Symbol.asyncIterator]();
  const first = it.next();
  first.catch(() => undefined); // seen when the writer gets here
  return {
    [Symbol.asyncIterator]: () => {
      let pending: Promise<IteratorResult<Uint8Array>> | null = first;
      return {
        next: () => {
          const r = pending ?? it.next();
          pending = null;
          return r;
        },
        return: async (value?: unknown) => (it.return ? it.return(value) : { done: true as const, value: undefined }),
      };
    },
  };
}
