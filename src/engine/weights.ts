// Checkpoint tensors onto the GPU, streamed in chunks so that no tensor is ever held whole in
// memory as f32: frozen linears quantized to NF4 (bit-identical to the CPU reference), bnb-4bit
// linears uploaded as stored, everything else in f32 or f16. bf16/f16 chunks go up as their raw
// bytes and are widened on the GPU (widen.ts; the CPU conversion was the load's bottleneck); only
// f32 (and f64) sources are converted on the CPU. Each upload is checked for GPU out-of-memory and
// validation errors, which WebGPU reports only through error scopes.
//
// Reading, uploading and GPU work overlap: the cache reads of the next chunks (and, when the
// loader announces it with readAhead, of the next tensor) are in flight while the current chunk
// is copied up and processed, and nothing waits for the GPU per chunk (queue order makes reusing
// the scratch buffers safe: a writeBuffer lands after the dispatches submitted before it).
import { parseBnbQuantState, type Nf4SourceDtype, type RawTensor } from '../io/nf4.ts';
import { f32ArrayToF16 } from '../io/dtype.ts';
import { toF32, type Dtype, type TensorInfo, type TensorReader } from '../io/safetensors.ts';
import { formatBytes } from '../util/format.ts';
import { submitPass, type Kernels } from './kernels.ts';
import { trackedBuffer } from './gpu-memory.ts';
import { createNf4Weight, destroyNf4, doubleQuantizeNf4, encodeQuantizeNf4, uploadNf4, type Nf4GpuWeight } from './nf4.ts';
import { BYTES, createTensor, type DType, type Tensor } from './tensor.ts';
import { alignedBytes, canWiden, encodeWiden, padTo4, type WidenSource } from './widen.ts';

/** Largest piece of a tensor converted at a time: 64 MiB of f32. */
const CHUNK_BYTES = 64 * 1024 * 1024;
/** Chunks are whole multiples of this many elements (every NF4 blocksize divides it). */
const CHUNK_ALIGN = 4096;
/**
 * Chunks read ahead of the one being uploaded (this tensor's, then the announced next tensor's):
 * with the chunk in hand, at most READ_AHEAD + 1 chunks (<= 3 x 64 MiB) of checkpoint bytes are
 * held on the CPU at a time.
 */
const READ_AHEAD = 2;
/**
 * Chunks submitted to the GPU and not yet done, before the next waits: bounds the staging memory
 * that queued writeBuffer copies hold when the GPU is slower than the reads.
 */
const GPU_AHEAD = 4;

const NF4_DTYPES: Partial<Record<Dtype, Nf4SourceDtype>> = { BF16: 'bfloat16', F16: 'float16', F32: 'float32' };
/** Checkpoint dtypes uploaded raw and converted on the GPU. */
const RAW16: Partial<Record<Dtype, WidenSource>> = { BF16: 'bf16', F16: 'f16' };

export class WeightError extends Error {
  override readonly name = 'WeightError';
}

interface ChunkRead {
  /** First element, and element count. */
  off: number;
  n: number;
  bytes: Promise<Uint8Array>;
}

/** The chunk reads of one tensor: those started (oldest first) and where the next starts. */
class TensorReads {
  readonly reads: ChunkRead[] = [];
  private next = 0;

  constructor(
    readonly reader: TensorReader,
    readonly t: TensorInfo,
    private readonly chunkElems: number,
  ) {}

  get done(): boolean {
    return this.next >= this.t.numel;
  }

  is(reader: TensorReader, t: TensorInfo): boolean {
    return this.reader === reader && this.t.name === t.name;
  }

  start(): void {
    const { t, next: off } = this;
    const n = Math.min(this.chunkElems, t.numel - off);
    const elem = t.byteLength / t.numel;
    const bytes = (async () => this.reader.readRange(t.name, off * elem, n * elem))();
    bytes.catch(() => undefined); // a read dropped unawaited (a failed or cancelled load) is no unhandled rejection
    this.reads.push({ off, n, bytes });
    this.next += n;
  }
}

/** GPU state shared by the uploads of one load: the scratch buffers and what was allocated. */
export class WeightUploader {
  readonly chunkElems: number;
  /** f32 values of a chunk, quantized from. */
  private scratch: GPUBuffer | null = null;
  /** Raw 16-bit words of a chunk, widened from. */
  private raw: GPUBuffer | null = null;
  /** The tensor being read (first) and those announced to come next, with their reads started. */
  private reading: TensorReads[] = [];
  /** onSubmittedWorkDone of the chunks in flight on the GPU, oldest first. */
  private inflight: Promise<unknown>[] = [];
  /** Bytes and buffers created (the model's GPU footprint). */
  bytes = 0;
  buffers = 0;

  constructor(
    readonly kernels: Kernels,
    /** The largest tensor to be quantized, so that the scratch buffer is no larger than needed. */
    private readonly largestLinear: number,
  ) {
    const limits = kernels.gpu.info.limits;
    const budget = Math.min(CHUNK_BYTES, limits.maxStorageBufferBindingSize, limits.maxBufferSize);
    this.chunkElems = Math.max(CHUNK_ALIGN, Math.floor(budget / 4 / CHUNK_ALIGN) * CHUNK_ALIGN);
  }

  get device(): GPUDevice {
    return this.kernels.device;
  }

  /** Frozen linear -> NF4 on the GPU, chunk by chunk; then bnb's double quantization if asked. */
  async quantizeLinear(reader: TensorReader, t: TensorInfo, shape: number[], doubleQuant: boolean): Promise<Nf4GpuWeight> {
    const dtype = NF4_DTYPES[t.dtype];
    if (!dtype) throw new WeightError(`${t.file}: ${t.name} has dtype ${t.dtype}; a linear weight must be F32, F16 or BF16`);
    return this.guard(t.name, async () => {
      const w = createNf4Weight(this.device, shape, { dtype, label: t.name });
      this.count(w.words.size + w.absmax.size, 2);
      try {
        const scratch = this.scratchBuffer();
        const from = RAW16[t.dtype];
        for await (const { off, n, bytes } of this.chunks(reader, t)) {
          // Queue order makes reusing the scratch buffers safe: these writes land after the last dispatch.
          if (from) {
            const raw = this.rawBuffer(n);
            this.device.queue.writeBuffer(raw, 0, padTo4(bytes));
            submitPass(this.kernels, (pass) => {
              encodeWiden(this.kernels, pass, raw, from, scratch, 'f32', n);
              encodeQuantizeNf4(this.kernels, pass, { buffer: scratch, shape: [n], dtype: 'f32' }, w, off);
            });
          } else {
            this.device.queue.writeBuffer(scratch, 0, toF32(t, bytes));
            submitPass(this.kernels, (pass) => encodeQuantizeNf4(this.kernels, pass, { buffer: scratch, shape: [n], dtype: 'f32' }, w, off));
          }
          await this.submitted();
        }
        if (doubleQuant) await doubleQuantizeNf4(this.device, w);
        return w;
      } catch (e) {
        destroyNf4(w);
        throw e;
      }
    });
  }

  /** A bitsandbytes 4-bit linear: its packed NF4 and quant state, uploaded as stored. */
  async uploadBnbLinear(lookup: (name: string) => TensorReader, prefix: string, parts: string[], shape: number[]): Promise<Nf4GpuWeight> {
    const raw: Record<string, RawTensor> = {};
    for (const name of parts) {
      const r = lookup(name);
      const info = r.get(name);
      raw[name] = { dtype: info.dtype, shape: info.shape, data: await r.read(name) };
    }
    const w = parseBnbQuantState(raw, prefix);
    if (w.shape.join() !== shape.join()) {
      throw new WeightError(`${prefix}weight: the quant state says shape [${w.shape}], the config implies [${shape}]`);
    }
    return this.guard(`${prefix}weight`, async () => {
      const g = uploadNf4(this.device, w, `${prefix}weight`);
      this.count(g.words.size + g.absmax.size, 2);
      return g;
    });
  }

  /**
   * Any float tensor -> a GPU tensor of `dtype` (f16 rounds to nearest even), chunk by chunk: f16
   * into f16 as stored, bf16/f16 into f32 and bf16 into f16 converted on the GPU (chunk offsets
   * are multiples of CHUNK_ALIGN elements, so every range starts 256-byte aligned), the rest on
   * the CPU.
   */
  async uploadDense(reader: TensorReader, t: TensorInfo, shape: number[], dtype: DType): Promise<Tensor> {
    return this.guard(t.name, async () => {
      const out = createTensor(this.device, shape, dtype, t.name, 'weights-dense');
      this.count(out.buffer.size, 1);
      try {
        const from = RAW16[t.dtype];
        for await (const { off, n, bytes } of this.chunks(reader, t)) {
          if (from === 'f16' && dtype === 'f16') {
            this.device.queue.writeBuffer(out.buffer, off * 2, padTo4(bytes)); // the last f16 of an odd count padded
          } else if (from && canWiden(from, dtype)) {
            const raw = this.rawBuffer(n);
            this.device.queue.writeBuffer(raw, 0, padTo4(bytes));
            const range = { buffer: out.buffer, offset: off * BYTES[dtype], size: alignedBytes(n, dtype) };
            submitPass(this.kernels, (pass) => encodeWiden(this.kernels, pass, raw, from, range, dtype, n));
          } else {
            const values = toF32(t, bytes);
            const typed = dtype === 'f32' ? values : f32ArrayToF16(values);
            this.device.queue.writeBuffer(out.buffer, off * BYTES[dtype], padTo4(new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength)));
          }
          await this.submitted();
        }
        return out;
      } catch (e) {
        out.buffer.destroy();
        throw e;
      }
    });
  }

  /**
   * Announces the tensor uploaded after the current one (same reader and name as that upload will
   * be given), so that its first chunks are read while the current one's last go up. Reads of a
   * tensor announced but then not uploaded next are dropped.
   */
  readAhead(reader: TensorReader, t: TensorInfo): void {
    this.reading.push(new TensorReads(reader, t, this.chunkElems));
    if (this.reading.length > 1) this.fill(); // the current tensor's reads may all be started already
  }

  destroy(): void {
    this.reading = [];
    this.inflight = [];
    this.scratch?.destroy();
    this.scratch = null;
    this.raw?.destroy();
    this.raw = null;
  }

  /** The chunks of `t` in order, each read READ_AHEAD chunks before it is asked for. */
  private async *chunks(reader: TensorReader, t: TensorInfo): AsyncGenerator<{ off: number; n: number; bytes: Uint8Array }> {
    const at = this.reading.findIndex((r) => r.is(reader, t));
    let cur: TensorReads;
    if (at >= 0) {
      cur = this.reading[at];
      this.reading.splice(0, at); // announced before it and not uploaded: dropped
    } else {
      cur = new TensorReads(reader, t, this.chunkElems);
      this.reading.unshift(cur);
    }
    try {
      while (!cur.done || cur.reads.length > 0) {
        this.fill();
        if (cur.reads.length === 0) cur.start(); // the reads held are all of tensors announced after it
        const read = cur.reads.shift()!;
        this.fill(); // the replacement starts before this chunk's bytes are awaited
        yield { off: read.off, n: read.n, bytes: await read.bytes };
      }
    } finally {
      const i = this.reading.indexOf(cur);
      if (i >= 0) this.reading.splice(i, 1);
    }
  }

  /** Starts reads, current tensor first, until READ_AHEAD are held. */
  private fill(): void {
    let held = 0;
    for (const r of this.reading) held += r.reads.length;
    for (const r of this.reading) {
      while (held < READ_AHEAD && !r.done) {
        r.start();
        held++;
      }
      if (held >= READ_AHEAD) break;
    }
  }

  /** After a chunk's GPU work is submitted: waits only while more than GPU_AHEAD chunks are in flight. */
  private async submitted(): Promise<void> {
    const done = this.device.queue.onSubmittedWorkDone();
    done.catch(() => undefined);
    this.inflight.push(done);
    if (this.inflight.length > GPU_AHEAD) await this.inflight.shift();
  }

  /** The raw-words buffer, grown (in CHUNK_ALIGN steps, at most a whole chunk) to hold n values. */
  private rawBuffer(n: number): GPUBuffer {
    const size = Math.min(this.chunkElems, Math.ceil(n / CHUNK_ALIGN) * CHUNK_ALIGN) * 2;
    if (!this.raw || this.raw.size < size) {
      this.raw?.destroy(); // work already submitted that reads it still completes
      this.raw = trackedBuffer(this.device, { size, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST, label: 'load.raw' }, 'scratch');
    }
    return this.raw;
  }

  private scratchBuffer(): GPUBuffer {
    if (!this.scratch) {
      const elems = Math.min(this.chunkElems, Math.ceil(Math.max(1, this.largestLinear) / CHUNK_ALIGN) * CHUNK_ALIGN);
      this.scratch = trackedBuffer(
        this.device,
        { size: elems * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST, label: 'load.scratch' },
        'scratch',
      );
    }
    return this.scratch;
  }

  private count(bytes: number, buffers: number): void {
    this.bytes += bytes;
    this.buffers += buffers;
  }

  /** Runs an upload inside error scopes and turns a GPU error into a message naming the tensor. */
  private async guard<T extends object>(name: string, run: () => Promise<T>): Promise<T> {
    const device = this.device;
    device.pushErrorScope('out-of-memory');
    device.pushErrorScope('validation');
    let result: T | undefined;
    let failed = false;
    let thrown: unknown;
    try {
      result = await run();
    } catch (e) {
      failed = true;
      thrown = e;
    }
    const validation = await device.popErrorScope();
    const oom = await device.popErrorScope();
    // A GPU error explains a JS error that follows it, so it wins.
    if (oom || validation) {
      if (result) release(result);
      if (oom) {
        throw new WeightError(
          `The GPU ran out of memory at ${name} (${formatBytes(this.bytes)} of model weights allocated): pick a smaller model, or close other tabs and apps that use the GPU.`,
        );
      }
      throw new WeightError(`The GPU refused ${name}: ${validation!.message}`);
    }
    if (failed) throw thrown;
    return result!;
  }
}

function release(x: object): void {
  if ('words' in x) destroyNf4(x as Nf4GpuWeight);
  else if ('buffer' in x) (x as Tensor).buffer.destroy();
}
