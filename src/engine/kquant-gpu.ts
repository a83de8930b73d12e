// GGUF quantizers on the GPU (shaders/kquant.wgsl): Q4_K, Q5_K, Q6_K and Q8_0 — the types of
// every q4_k_m / q5_k_m / q6_k / q8_0 export's big tensors — with ggml's reference algorithms as
// the CPU quantizers (src/io/quants/) run them, for the export that quantized billions of weights
// in JavaScript threads at a few million weights a second each.
//
// Same bytes as the CPU, nearly always: the shader follows the C code operation for operation with
// correctly rounded division and square root (see its header), so a difference needs a compiler
// that does something WGSL allows and ggml's C does not (tests/kquant-gpu.test.ts measures the
// agreement and bounds the reconstruction error of any block that differs). Blocks the shader
// cannot reproduce exactly (non-finite values, tiny or huge groups: the shader flags them) are
// quantized again here on the CPU, so NaN and Inf come out exactly as quantize() makes them.
//
// Values go up in chunks of whole pack units (maxStorageBufferBindingSize bounds a binding: 128
// MiB on lavapipe), each chunk one submit: search pass, pack pass, copy to a staging buffer, map.
// Calls may overlap (the export reads and merges the next tensor while this one is on the GPU);
// each holds its own buffers, taken from a few kept for reuse.
import { trackedBuffer } from './gpu-memory.ts';
import { grid, type Kernel, type Kernels } from './kernels.ts';
import type { GpuInfo } from './gpu.ts';
import { GGMLType, quantFormat, quantize, type GGMLTypeId } from '../io/quants/index.ts';
import source from '../../shaders/kquant.wgsl?raw';

/** A GGUF quantizer as src/io/gguf-model.ts takes it. */
export type Quantizer = (type: GGMLTypeId, values: Float32Array) => Uint8Array | Promise<Uint8Array>;

interface TypePlan {
  blockSize: number;
  typeSize: number;
  /** Elements per search invocation, and the words it leaves in `sm` (none: no search pass). */
  group: number;
  groupWords: number;
  search?: { entry: string; constants?: Record<string, number | boolean> };
  pack: { entry: string; constants?: Record<string, number | boolean> };
  /** Blocks per pack invocation (two where a block is not a whole number of words), and its words. */
  unitBlocks: number;
  unitWords: number;
}

const PLANS = new Map<number, TypePlan>([
  [GGMLType.Q4_K, { blockSize: 256, typeSize: 144, group: 32, groupWords: 4, search: { entry: 'qkx2_search', constants: { NMAX: 15, RMIN: -1, NSTEP: 20 } }, pack: { entry: 'qkx2_pack', constants: { NMAX: 15, FIVE: false } }, unitBlocks: 1, unitWords: 36 }],
  [GGMLType.Q5_K, { blockSize: 256, typeSize: 176, group: 32, groupWords: 4, search: { entry: 'qkx2_search', constants: { NMAX: 31, RMIN: -0.5, NSTEP: 15 } }, pack: { entry: 'qkx2_pack', constants: { NMAX: 31, FIVE: true } }, unitBlocks: 1, unitWords: 44 }],
  [GGMLType.Q6_K, { blockSize: 256, typeSize: 210, group: 16, groupWords: 2, search: { entry: 'q6k_search' }, pack: { entry: 'q6k_pack' }, unitBlocks: 2, unitWords: 105 }],
  [GGMLType.Q8_0, { blockSize: 32, typeSize: 34, group: 32, groupWords: 0, pack: { entry: 'q8_0_pack' }, unitBlocks: 2, unitWords: 17 }],
]);

/** The types the shader quantizes (KQuantGpu). */
export const GPU_QUANT_TYPES: readonly GGMLTypeId[] = [...PLANS.keys()] as GGMLTypeId[];

/**
 * The types an export sends to the GPU (gpuQuantizer's default): those whose bytes equalled the CPU
 * quantizer's on every block on the H200 (bench/h200-2026-11-29-export-8b-gpu.json: Q4_K and Q5_K
 * 16384 of 16384 blocks, Q8_0 131072 of 131072). Q6_K came out identical on 16303 of 16384 blocks
 * there (on every block on lavapipe), below the 99.9% contract, so it stays on the CPU until the
 * difference is understood.
 */
export const GPU_EXPORT_TYPES: readonly GGMLTypeId[] = [GGMLType.Q4_K, GGMLType.Q5_K, GGMLType.Q8_0] as GGMLTypeId[];

/** Chunks are whole pack units of every type (Q6_K: two super-blocks). */
const CHUNK_ALIGN = 512;
const WG = 64;
/** Buffer sets kept for the next calls (about as many as run at once during an export). */
const SPARE_SETS = 3;

interface BufferSet {
  elements: number;
  x: GPUBuffer;
  sm: GPUBuffer;
  words: GPUBuffer;
}

export interface KQuantGpuOptions {
  /** Largest chunk of values per submit (default 2^24, and what one binding may hold). */
  chunkElements?: number;
}

/** Where the work went, for benches and tests. */
export interface KQuantStats {
  /** Values quantized through the GPU (including blocks redone on the CPU). */
  gpuElements: number;
  /** Blocks the shader flagged and the CPU quantized instead. */
  cpuBlocks: number;
  /** Values given to the fallback quantizer (types or sizes the GPU path does not take). */
  fallbackElements: number;
}

export class KQuantGpu {
  readonly stats: KQuantStats = { gpuElements: 0, cpuBlocks: 0, fallbackElements: 0 };
  private readonly chunk: number;
  private readonly spare: BufferSet[] = [];
  private destroyed = false;

  constructor(
    private readonly kernels: Kernels,
    opts: KQuantGpuOptions = {},
  ) {
    const binding = Math.floor(kernels.gpu.info.limits.maxStorageBufferBindingSize / 4);
    const want = Math.min(opts.chunkElements ?? 1 << 24, binding);
    this.chunk = Math.max(CHUNK_ALIGN, Math.floor(want / CHUNK_ALIGN) * CHUNK_ALIGN);
  }

  /** Whether quantize() takes this type. */
  static handles(type: number): boolean {
    return PLANS.has(type);
  }

  /** quantize(type, values) (src/io/quants) on the GPU: the same bytes, a new array. */
  async quantize(type: number, values: Float32Array): Promise<Uint8Array> {
    const plan = PLANS.get(type);
    if (!plan) throw new RangeError(`no GPU quantizer for ggml type ${type}`);
    // Wrong lengths fail as the CPU quantizer fails.
    if (values.length % plan.blockSize !== 0 || values.length === 0) return quantize(type, values);
    const out = new Uint8Array((values.length / plan.blockSize) * plan.typeSize);
    const set = this.takeSet(Math.min(this.chunk, values.length));
    try {
      for (let start = 0; start < values.length; start += this.chunk) {
        const end = Math.min(values.length, start + this.chunk);
        const bytesAt = (start / plan.blockSize) * plan.typeSize;
        await this.runChunk(type, plan, set, values.subarray(start, end), out.subarray(bytesAt, bytesAt + ((end - start) / plan.blockSize) * plan.typeSize));
      }
    } finally {
      this.giveSet(set);
    }
    this.stats.gpuElements += values.length;
    return out;
  }

  /** Frees the kept buffers; later calls make new ones. */
  destroy(): void {
    this.destroyed = true;
    for (const s of this.spare.splice(0)) destroySet(s);
  }

  private async runChunk(type: number, plan: TypePlan, set: BufferSet, values: Float32Array, out: Uint8Array): Promise<void> {
    const { device } = this.kernels;
    const blocks = values.length / plan.blockSize;
    const groups = values.length / plan.group;
    const units = Math.ceil(blocks / plan.unitBlocks);
    const flagsAt = units * plan.unitWords;
    const bytes = (flagsAt + units) * 4;
    const params = { groups, units, flags_at: flagsAt, zero: 0 };
    // Untracked: upload and staging buffers live only for this chunk (gpu-memory.ts).
    const staging = device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, label: 'kquant.staging' });
    let upload: GPUBuffer | null = null;
    try {
      const encoder = device.createCommandEncoder({ label: 'kquant' });
      if (!(typeof SharedArrayBuffer === 'function' && values.buffer instanceof SharedArrayBuffer)) device.queue.writeBuffer(set.x, 0, values);
      else {
        // Shared memory (the pool's merged weights): Dawn's writeBuffer in Node crashes on a
        // SharedArrayBuffer view, so the values are copied once into a buffer mapped at creation.
        upload = device.createBuffer({ size: values.byteLength, usage: GPUBufferUsage.COPY_SRC, mappedAtCreation: true, label: 'kquant.upload' });
        new Float32Array(upload.getMappedRange()).set(values);
        upload.unmap();
        encoder.copyBufferToBuffer(upload, 0, set.x, 0, values.byteLength);
      }
      const pass = encoder.beginComputePass();
      try {
        if (plan.search) {
          this.kernels.dispatchAt(pass, this.kernel(plan.search), [[0, set.x], [1, set.sm]], params, grid(this.kernels, Math.ceil(groups / WG)));
          this.kernels.dispatchAt(pass, this.kernel(plan.pack), [[0, set.x], [1, set.sm], [2, set.words]], params, grid(this.kernels, Math.ceil(units / WG)));
        } else {
          this.kernels.dispatchAt(pass, this.kernel(plan.pack), [[0, set.x], [2, set.words]], params, grid(this.kernels, Math.ceil(units / WG)));
        }
      } finally {
        pass.end();
      }
      encoder.copyBufferToBuffer(set.words, 0, staging, 0, bytes);
      device.queue.submit([encoder.finish()]);
      await staging.mapAsync(GPUMapMode.READ, 0, bytes);
      const mapped = staging.getMappedRange(0, bytes);
      out.set(new Uint8Array(mapped, 0, out.length));
      // Flagged units: the CPU quantizer's bytes for their blocks.
      const flags = new Uint32Array(mapped, flagsAt * 4, units);
      const fmt = quantFormat(type);
      for (let u = 0; u < units; u++) {
        if (flags[u] === 0) continue;
        const b0 = u * plan.unitBlocks;
        const b1 = Math.min(blocks, b0 + plan.unitBlocks);
        fmt.quantize(values.subarray(b0 * plan.blockSize, b1 * plan.blockSize), out.subarray(b0 * plan.typeSize, b1 * plan.typeSize));
        this.stats.cpuBlocks += b1 - b0;
      }
      staging.unmap();
    } finally {
      staging.destroy();
      upload?.destroy();
    }
  }

  private kernel(k: { entry: string; constants?: Record<string, number | boolean> }): Kernel {
    return this.kernels.get({ name: 'kquant', source, dtype: 'f32', entryPoint: k.entry, constants: k.constants });
  }

  /** Buffers for chunks of up to `elements` values (sized for the largest type's needs). */
  private takeSet(elements: number): BufferSet {
    const at = this.spare.findIndex((s) => s.elements >= elements);
    if (at >= 0) return this.spare.splice(at, 1)[0];
    // Power-of-two sizes (at least 2^16 values, at most a chunk), so that sets fit many tensors.
    const n = Math.min(this.chunk, Math.max(1 << 16, 2 ** Math.ceil(Math.log2(elements))));
    const device = this.kernels.device;
    const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    // sm: 4 words per 32 values (Q4_K/Q5_K) or 2 per 16 (Q6_K); words: at most 36 + 1 per 256 (Q4_K), 17 + 1 per 64 (Q8_0).
    return {
      elements: n,
      x: trackedBuffer(device, { size: n * 4, usage, label: 'kquant.x' }, 'scratch'),
      sm: trackedBuffer(device, { size: (n / 8) * 4, usage, label: 'kquant.sm' }, 'scratch'),
      words: trackedBuffer(device, { size: Math.ceil((n / 64) * 18) * 4, usage, label: 'kquant.words' }, 'scratch'),
    };
  }

  private giveSet(s: BufferSet): void {
    if (this.destroyed) return destroySet(s);
    this.spare.push(s);
    if (this.spare.length > SPARE_SETS) {
      this.spare.sort((a, b) => b.elements - a.elements);
      destroySet(this.spare.pop()!);
    }
  }
}

function destroySet(s: BufferSet): void {
  s.x.destroy();
  s.sm.destroy();
  s.words.destroy();
}

/** A quantizer with its counters and a destroy() for its GPU buffers. */
export type GpuQuantizer = Quantizer & { readonly stats: KQuantStats; destroy(): void };

export interface GpuQuantizerOptions extends KQuantGpuOptions {
  /** Types the GPU does not take, and tensors under minElements (default: quantize() here; an
   * export passes its worker pool). */
  fallback?: Quantizer;
  /** Smaller tensors go to the fallback: a GPU round trip costs more than the CPU work (default 2^14). */
  minElements?: number;
  /** Types sent to the GPU (default GPU_EXPORT_TYPES); the rest go to the fallback. */
  types?: readonly GGMLTypeId[];
}

/** The quantizer option of src/io/gguf-model.ts, with GPU_EXPORT_TYPES (or `types`) on the GPU. */
export function gpuQuantizer(kernels: Kernels, opts: GpuQuantizerOptions = {}): GpuQuantizer {
  const gpu = new KQuantGpu(kernels, opts);
  const fallback = opts.fallback ?? quantize;
  const min = opts.minElements ?? 1 << 14;
  const types = new Set(opts.types ?? GPU_EXPORT_TYPES);
  const q = (type: GGMLTypeId, values: Float32Array): Uint8Array | Promise<Uint8Array> => {
    if (types.has(type) && KQuantGpu.handles(type) && values.length >= Math.max(1, min)) return gpu.quantize(type, values);
    gpu.stats.fallbackElements += values.length;
    return fallback(type, values);
  };
  return Object.assign(q, { stats: gpu.stats, destroy: () => gpu.destroy() });
}

/**
 * A CPU posing as a GPU (Mesa's lavapipe, SwiftShader): there the shader runs on the same cores
 * as the worker pool, slower than the pool's own JavaScript, so exports keep to the pool.
 */
export function isSoftwareGpu(info: Pick<GpuInfo, 'architecture' | 'description' | 'vendor'>): boolean {
  return /llvmpipe|lavapipe|swiftshader|software/i.test(`${info.vendor} ${info.architecture} ${info.description}`);
}
