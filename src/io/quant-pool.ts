// Quantization and LoRA merging in a pool of workers (browser: module Workers spawned by the trainer
// worker; Node: worker_threads), so that a k-quant export (about a second per million weights per
// core in JS) neither freezes anything nor runs on one core.
//
// Every tensor is cut into pieces at block boundaries (quantize) or row boundaries (merge); the
// pieces run on whichever worker is free and are put back in order. ggml's quantizers treat each
// block on its own and mergeLora each row on its own, and the workers run the very same functions,
// so the bytes equal quantize() / mergeLora() on one thread (tests/export-pool.test.ts checks).

import { mergedWeights, mergeLora, MergeError } from './merge.ts';
import type { LoraAdapter } from './peft.ts';
import { quantize, requireGgmlType } from './quants/index.ts';
import type { ExportArch, WeightSource } from './export-arch.ts';
import type { GgufTensorToWrite } from './gguf.ts';

export type QuantTask =
  | { id: number; op: 'quantize'; type: number; src: Float32Array }
  | { id: number; op: 'merge'; w: Float32Array; a: Float32Array; b: Float32Array; rows: number; cols: number; r: number; scale: number };

export type QuantReply = { id: number; out: Uint8Array | Float32Array } | { id: number; error: string };

/** What a pool worker does with one task (workers/quant.worker.ts, quant-pool-node-worker.ts). */
export function runQuantTask(task: QuantTask): { reply: QuantReply; transfer: ArrayBuffer[] } {
  try {
    const out =
      task.op === 'quantize'
        ? quantize(task.type, task.src)
        : mergeLora(task.w, task.a, task.b, task.rows, task.cols, task.r, task.scale, task.w);
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
}

interface Job {
  task: QuantTask;
  transfer: ArrayBuffer[];
  resolve: (out: Uint8Array | Float32Array) => void;
  reject: (e: Error) => void;
}

export class QuantPoolClosedError extends Error {
  override name = 'AbortError';
}

export class QuantPool {
  readonly size: number;
  private readonly workers: { worker: PoolWorker; job: Job | null }[] = [];
  private readonly queue: Job[] = [];
  private nextId = 1;
  /** Pieces the workers have finished (how much went through the pool, for tests and benches). */
  completed = 0;
  private failure: Error | null = null;
  private readonly maxPiece: number;
  private readonly minPiece: number;

  constructor(spawn: SpawnPoolWorker, size: number, opts: QuantPoolOptions = {}) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`a quantization pool needs at least one worker, got ${size}`);
    this.size = size;
    this.maxPiece = opts.maxPieceElements ?? 1 << 22;
    this.minPiece = opts.minPieceElements ?? 1 << 16;
    for (let i = 0; i < size; i++) {
      const slot: { worker: PoolWorker; job: Job | null } = { worker: null as unknown as PoolWorker, job: null };
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
    const parts: Promise<Uint8Array>[] = [];
    for (let start = 0; start < n; start += piece) {
      const end = Math.min(n, start + piece);
      parts.push(this.submit({ id: 0, op: 'quantize', type, src: src.slice(start, end) }) as Promise<Uint8Array>);
    }
    const out = new Uint8Array(blocks * info.typeSize);
    let o = 0;
    for (const p of await Promise.all(parts)) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }

  /** mergeLora(w, a, b, rows, cols, r, scale) in row pieces across the workers (a new array). */
  async merge(w: Float32Array, a: Float32Array, b: Float32Array, rows: number, cols: number, r: number, scale: number): Promise<Float32Array> {
    if (w.length !== rows * cols || a.length !== r * cols || b.length !== rows * r) {
      return mergeLora(w, a, b, rows, cols, r, scale); // throws the MergeError that says which shape is off
    }
    if (w.length < this.minPiece) return mergeLora(w, a, b, rows, cols, r, scale);
    const rowsPer = Math.max(1, Math.floor(this.pieceSize(w.length, 1) / cols));
    const parts: Promise<Float32Array>[] = [];
    for (let start = 0; start < rows; start += rowsPer) {
      const count = Math.min(rowsPer, rows - start);
      parts.push(
        this.submit({
          id: 0,
          op: 'merge',
          w: w.slice(start * cols, (start + count) * cols),
          a: a.slice(),
          b: b.slice(start * r, (start + count) * r),
          rows: count,
          cols,
          r,
          scale,
        }) as Promise<Float32Array>,
      );
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

  private submit(task: QuantTask): Promise<Uint8Array | Float32Array> {
    if (this.failure) return Promise.reject(this.failure);
    task.id = this.nextId++;
    const transfer = task.op === 'quantize' ? [task.src.buffer as ArrayBuffer] : [task.w.buffer as ArrayBuffer, task.a.buffer as ArrayBuffer, task.b.buffer as ArrayBuffer];
    return new Promise((resolve, reject) => {
      this.queue.push({ task, transfer, resolve, reject });
      this.dispatch();
    });
  }

  private dispatch(): void {
    for (const slot of this.workers) {
      if (this.queue.length === 0) return;
      if (slot.job) continue;
      const job = this.queue.shift()!;
      slot.job = job;
      slot.worker.post(job.task, job.transfer);
    }
  }

  private settle(slot: { job: Job | null }, reply: QuantReply): void {
    const job = slot.job;
    if (!job || job.task.id !== reply.id) return; // a reply after close()
    slot.job = null;
    this.completed++;
    if ('error' in reply) job.reject(job.task.op === 'merge' ? new MergeError(reply.error) : new Error(reply.error));
    else job.resolve(reply.out);
    this.dispatch();
  }

  private fail(e: Error): void {
    if (this.failure) return;
    this.failure = e;
    for (const s of this.workers) {
      s.job?.reject(e);
      s.job = null;
    }
    for (const j of this.queue.splice(0)) j.reject(e);
  }
}

/** mergedWeights (src/io/merge.ts) with each merge run in the pool: the same values. */
export function pooledMergedWeights(arch: ExportArch, base: WeightSource, adapter: LoraAdapter, pool: QuantPool): WeightSource {
  return mergedWeights(arch, base, adapter, (w, a, b, rows, cols, r, scale) => pool.merge(w, a, b, rows, cols, r, scale));
}

/**
 * The same tensors, each one's data started when the writer asks for the tensor `ahead` places
 * before it: reading and merging the next tensor overlaps quantizing this one. Results wait in
 * order; a failure surfaces when the writer reaches that tensor.
 */
export function prefetchTensors(tensors: readonly GgufTensorToWrite[], ahead = 1): GgufTensorToWrite[] {
  type Produced = Awaited<ReturnType<Extract<GgufTensorToWrite['data'], () => unknown>>>;
  const started: (Promise<Produced> | undefined)[] = new Array(tensors.length);
  const start = (i: number): Promise<Produced> | undefined => {
    const t = tensors[i];
    if (t === undefined || typeof t.data !== 'function') return undefined;
    if (!started[i]) {
      const p = Promise.resolve().then(t.data as () => Produced | Promise<Produced>);
      p.catch(() => undefined); // seen when the writer gets here
      started[i] = p;
    }
    return started[i];
  };
  return tensors.map((t, i) =>
    typeof t.data !== 'function'
      ? t
      : {
          ...t,
          data: () => {
            const mine = start(i)!;
            for (let k = 1; k <= ahead; k++) start(i + k);
            started[i] = undefined; // let the bytes go once written
            return mine;
          },
        },
  );
}
