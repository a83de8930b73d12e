// NF4 on the GPU (shaders/nf4.wgsl): quantize frozen weights as they stream in, bit-identical to
// the CPU reference quantizeNf4 (src/io/nf4.ts), and dequantize (tests, merges). The packed codes
// live in u32 words holding bnb's bytes little-endian (byte k = bits 8*(k%4) of word k/4), so the
// same bytes go to and from a bnb-4bit checkpoint unchanged.
//
// Double quantization runs on the CPU (doubleQuantizeNf4): the absmax arrays are small (one f32 per
// 64 weights), so they are read back, compressed exactly as bnb does, and the DECODED absmax written
// back, so that the GPU weight then holds what a double-quantized bnb weight dequantizes to.
import { trackedBuffer } from './gpu-memory.ts';
import { type Kernels, grid, submitPass } from './kernels.ts';
import { createTensor, numel, type DType, type Tensor } from './tensor.ts';
import {
  DEFAULT_NF4_BLOCKSIZE,
  NF4_BLOCKSIZES,
  NF4_CODE,
  checkWeight,
  compressAbsmax,
  decompressAbsmax,
  nf4BlockCount,
  nf4PackedBytes,
  type CompressAbsmaxOptions,
  type Nf4Nested,
  type Nf4SourceDtype,
  type Nf4Weight,
} from '../io/nf4.ts';
import source from '../../shaders/nf4.wgsl?raw';

/**
 * WGSL helpers shared by every kernel that reads NF4 words (this one, and a fused NF4 matmul that
 * puts it ahead of its own source): the code table and the place of element j (0..7) of a word.
 *   nf4_shift(j)                  bit offset of element j: byte j/2, even j in the high nibble
 *   nf4_dequant(word, shift, a)   NF4_CODE[(word >> shift) & 15] * a (one f32 rounding, as bnb), read
 *                                 from the workgroup table nf4_table_init fills
 * Flat element e of a tensor is element e % 8 of word e / 8 (blocksizes are multiples of 8, so a
 * word never straddles two absmax blocks), and its absmax is absmax[e / blocksize].
 */
export const NF4_WGSL = `// NF4 helpers (src/engine/nf4.ts NF4_WGSL)
const NF4_CODE = array<f32, 16>(${Array.from(NF4_CODE, (v) => (Number.isInteger(v) ? v.toFixed(1) : String(v))).join(', ')});

fn nf4_shift(j: u32) -> u32 {
  return ((j & 6u) << 2u) | ((~j & 1u) << 2u);
}

// The code table in workgroup memory: a const array indexed at run time is copied into each
// invocation's private memory on every access by some compilers (measured on the H200: the fused
// NF4 matmul ran at 2.3 TFLOP/s with it, against 28 for the same tiles in f32).
var<workgroup> nf4_table: array<f32, 16>;

/** Fills nf4_table; every invocation of the workgroup calls it (uniform control flow) before nf4_dequant. */
fn nf4_table_init(local_index: u32) {
  if (local_index < 16u) { nf4_table[local_index] = NF4_CODE[local_index]; }
  workgroupBarrier();
}

fn nf4_dequant(word: u32, shift: u32, absmax: f32) -> f32 {
  return nf4_table[(word >> shift) & 15u] * absmax;
}
`;

const WG = 64;
const KERNEL_SOURCE = NF4_WGSL + source;

/** An NF4 weight on the GPU: the GPU side of Nf4Weight (src/io/nf4.ts), same bytes and absmax. */
export interface Nf4GpuWeight {
  shape: number[];
  numel: number;
  blocksize: number;
  /** The dtype the weight was quantized from (and dequantizes back to). */
  dtype: Nf4SourceDtype;
  /** ceil(numel / 8) u32 words: bnb's packed bytes, little-endian; bytes past (numel+1)/2 are 0. */
  words: GPUBuffer;
  /** f32 per block: what dequantization multiplies by (the decoded value when double-quantized). */
  absmax: GPUBuffer;
  /** The double-quantized absmax, kept for export, when there is one. */
  nested?: Nf4Nested;
}

function storage(): number {
  return GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
}

/** Zeroed GPU buffers for an NF4 weight of `shape`. */
export function createNf4Weight(
  device: GPUDevice,
  shape: number[],
  opts: { blocksize?: number; dtype?: Nf4SourceDtype; label?: string } = {},
): Nf4GpuWeight {
  const blocksize = opts.blocksize ?? DEFAULT_NF4_BLOCKSIZE;
  if (!(NF4_BLOCKSIZES as readonly number[]).includes(blocksize)) {
    throw new Error(`nf4: blocksize ${blocksize} is not one of ${NF4_BLOCKSIZES.join(', ')}`);
  }
  const n = numel(shape);
  const label = opts.label ?? 'nf4';
  return {
    shape: [...shape],
    numel: n,
    blocksize,
    dtype: opts.dtype ?? 'float32',
    words: trackedBuffer(device, { size: Math.max(4, Math.ceil(n / 8) * 4), usage: storage(), label: `${label}.words` }, 'weights-nf4'),
    absmax: trackedBuffer(device, { size: Math.max(4, nf4BlockCount(n, blocksize) * 4), usage: storage(), label: `${label}.absmax` }, 'weights-nf4'),
  };
}

/**
 * Records the quantization of `x` (f32 or f16 storage) into `w`. `x` may be a chunk of the weight
 * (streaming): its values are the flattened elements [elementOffset, elementOffset + numel(x)),
 * elementOffset a multiple of the blocksize, and only the last chunk may end inside a block.
 */
export function encodeQuantizeNf4(kernels: Kernels, pass: GPUComputePassEncoder, x: Tensor, w: Nf4GpuWeight, elementOffset = 0): void {
  const n = checkChunk('quantize', numel(x.shape), w, elementOffset);
  const kernel = kernels.get({ name: 'nf4', source: KERNEL_SOURCE, dtype: x.dtype, entryPoint: 'quantize' });
  const count = Math.ceil(n / w.blocksize);
  const params = { n, blocksize: w.blocksize, count, first_block: elementOffset / w.blocksize };
  kernels.dispatch(pass, kernel, [w.words, w.absmax, x.buffer], params, grid(kernels, Math.ceil(count / WG)));
}

/**
 * Records the dequantization of `w` into `out` (f32 or f16): code value * absmax in f32, rounded
 * once to the storage type. `out` may be a chunk, as for encodeQuantizeNf4.
 */
export function encodeDequantizeNf4(kernels: Kernels, pass: GPUComputePassEncoder, w: Nf4GpuWeight, out: Tensor, elementOffset = 0): void {
  const n = checkChunk('dequantize', numel(out.shape), w, elementOffset);
  const kernel = kernels.get({ name: 'nf4', source: KERNEL_SOURCE, dtype: out.dtype, entryPoint: 'dequantize' });
  const count = Math.ceil(n / 8);
  const params = { n, blocksize: w.blocksize, count, first_block: elementOffset / w.blocksize };
  kernels.dispatch(pass, kernel, [w.words, w.absmax, out.buffer], params, grid(kernels, Math.ceil(count / WG)));
}

/** Quantizes a whole tensor, submitted at once. `shape` defaults to x's. */
export function quantizeNf4Gpu(
  kernels: Kernels,
  x: Tensor,
  opts: { blocksize?: number; dtype?: Nf4SourceDtype; shape?: number[]; label?: string } = {},
): Nf4GpuWeight {
  const shape = opts.shape ?? x.shape;
  if (numel(shape) !== numel(x.shape)) throw new Error(`nf4 quantize: shape [${shape}] does not match x [${x.shape}]`);
  const w = createNf4Weight(kernels.device, shape, { ...opts, dtype: opts.dtype ?? (x.dtype === 'f16' ? 'float16' : 'float32') });
  submitPass(kernels, (pass) => encodeQuantizeNf4(kernels, pass, x, w));
  return w;
}

/** Dequantizes a whole weight into a new tensor of storage type `dtype`, submitted at once. */
export function dequantizeNf4Gpu(kernels: Kernels, w: Nf4GpuWeight, dtype: DType): Tensor {
  const out = createTensor(kernels.device, [...w.shape], dtype, 'nf4.dequant');
  submitPass(kernels, (pass) => encodeDequantizeNf4(kernels, pass, w, out));
  return out;
}

/** Puts a CPU / checkpoint NF4 weight (parseBnbQuantState, quantizeNf4) on the GPU. */
export function uploadNf4(device: GPUDevice, w: Nf4Weight, label?: string): Nf4GpuWeight {
  checkWeight(w);
  const g = createNf4Weight(device, w.shape, { blocksize: w.blocksize, dtype: w.dtype, label });
  const bytes = new Uint8Array(g.words.size);
  bytes.set(w.packed);
  device.queue.writeBuffer(g.words, 0, bytes);
  device.queue.writeBuffer(g.absmax, 0, w.absmax);
  if (w.nested) g.nested = w.nested;
  return g;
}

/** Reads a GPU NF4 weight back as the CPU type (same bytes bnb would store). */
export async function readNf4(device: GPUDevice, w: Nf4GpuWeight): Promise<Nf4Weight> {
  const words = await readBuffer(device, w.words);
  const absmax = await readBuffer(device, w.absmax);
  const nBlocks = nf4BlockCount(w.numel, w.blocksize);
  const out: Nf4Weight = {
    shape: [...w.shape],
    numel: w.numel,
    blocksize: w.blocksize,
    packed: new Uint8Array(words, 0, nf4PackedBytes(w.numel)),
    absmax: new Float32Array(absmax, 0, nBlocks),
    dtype: w.dtype,
  };
  if (w.nested) out.nested = w.nested;
  return out;
}

/**
 * bnb's double quantization of a GPU weight's absmax, on the CPU (see the header): reads the
 * absmax, compresses it (compressAbsmax), writes the decoded absmax back and keeps the nested form.
 */
export async function doubleQuantizeNf4(device: GPUDevice, w: Nf4GpuWeight, opts: CompressAbsmaxOptions = {}): Promise<Nf4Nested> {
  if (w.nested) throw new Error('nf4: this weight is double-quantized already');
  const nBlocks = nf4BlockCount(w.numel, w.blocksize);
  const absmax = new Float32Array(await readBuffer(device, w.absmax), 0, nBlocks);
  const nested = compressAbsmax(absmax, opts);
  device.queue.writeBuffer(w.absmax, 0, decompressAbsmax(nested, nBlocks));
  w.nested = nested;
  return nested;
}

export function destroyNf4(w: Nf4GpuWeight): void {
  w.words.destroy();
  w.absmax.destroy();
}

function checkChunk(what: string, n: number, w: Nf4GpuWeight, offset: number): number {
  if (!Number.isInteger(offset) || offset < 0 || offset % w.blocksize !== 0) {
    throw new Error(`nf4 ${what}: element offset ${offset} is not a multiple of the blocksize ${w.blocksize}`);
  }
  if (n === 0 || offset + n > w.numel) throw new Error(`nf4 ${what}: elements [${offset}, ${offset + n}) outside the weight's ${w.numel}`);
  if (offset + n < w.numel && n % w.blocksize !== 0) {
    throw new Error(`nf4 ${what}: a chunk that is not the last must hold whole blocks (${n} elements, blocksize ${w.blocksize})`);
  }
  return n;
}

async function readBuffer(device: GPUDevice, buffer: GPUBuffer): Promise<ArrayBuffer> {
  // Untracked: a staging buffer lives only for this call (gpu-memory.ts).
  const staging = device.createBuffer({ size: buffer.size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const encoder = device.createCommandEncoder();
  encoder.copyBufferToBuffer(buffer, 0, staging, 0, buffer.size);
  device.queue.submit([encoder.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const copy = staging.getMappedRange().slice(0);
  staging.unmap();
  staging.destroy();
  return copy;
}
