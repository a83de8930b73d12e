// 16-bit checkpoint values -> f32 (or bf16 -> f16) on the GPU (shaders/widen.wgsl), bit-exact with
// the CPU conversions of src/io/dtype.ts: the loader uploads a tensor's raw bf16/f16 bytes (half
// the bytes of f32, and no CPU pass over them) and converts them here, ahead of the NF4 quantizer
// or into a dense weight. Integer arithmetic only, so no shader-f16 is needed.
import { FLAT_WORKGROUP, grid, submitPass, type Kernels } from './kernels.ts';
import { createTensor, type DType, type Tensor } from './tensor.ts';
import source from '../../shaders/widen.wgsl?raw';

/** The 16-bit source formats the kernel reads. */
export type WidenSource = 'bf16' | 'f16';

const ENTRY: Record<string, string> = {
  'bf16>f32': 'bf16_to_f32',
  'f16>f32': 'f16_to_f32',
  'bf16>f16': 'bf16_to_f16',
};

/** Whether the GPU converts `from` to storage type `to` (f16 -> f16 needs no conversion: copy it). */
export function canWiden(from: WidenSource, to: DType): boolean {
  return `${from}>${to}` in ENTRY;
}

/** Bytes of a buffer range holding n values of `dtype`, as WebGPU wants it (a multiple of 4). */
export function alignedBytes(n: number, dtype: DType | WidenSource): number {
  return Math.ceil((n * (dtype === 'f32' ? 4 : 2)) / 4) * 4;
}

/**
 * Records the conversion of n values: `src` holds their raw little-endian 16-bit patterns (two to
 * a u32 word, the bytes as stored in a checkpoint; an odd n's last word has an unused high half),
 * `dst` receives them as `to` (f32, or f16 two to a word with a 0 pad after an odd n). Either may
 * be a buffer range (a chunk of a larger tensor); dst must not overlap src.
 */
export function encodeWiden(
  kernels: Kernels,
  pass: GPUComputePassEncoder,
  src: GPUBuffer | GPUBufferBinding,
  from: WidenSource,
  dst: GPUBuffer | GPUBufferBinding,
  to: DType,
  n: number,
): void {
  const entryPoint = ENTRY[`${from}>${to}`];
  if (!entryPoint) throw new Error(`widen: no conversion from ${from} to ${to}`);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`widen: ${n} elements`);
  const need = (b: GPUBuffer | GPUBufferBinding, bytes: number, what: string): void => {
    const size = 'buffer' in b ? (b.size ?? b.buffer.size - (b.offset ?? 0)) : b.size;
    if (size < bytes) throw new Error(`widen: ${what} holds ${size} bytes, ${n} values need ${bytes}`);
  };
  need(src, alignedBytes(n, from), 'src');
  need(dst, to === 'f32' ? n * 4 : alignedBytes(n, to), 'dst');
  const kernel = kernels.get({ name: 'widen', source, dtype: 'f32', entryPoint });
  const words = Math.ceil(n / 2);
  kernels.dispatchAt(pass, kernel, [[0, src], [1, dst]], { n }, grid(kernels, Math.ceil(words / FLAT_WORKGROUP)));
}

/** Raw 16-bit patterns (Uint16Array, or their little-endian bytes) -> a new GPU tensor, submitted now. */
export function widenGpu(kernels: Kernels, raw: Uint16Array | Uint8Array, from: WidenSource, to: DType = 'f32', label = 'widen'): Tensor {
  const bytes = raw instanceof Uint16Array ? new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength) : raw;
  if (bytes.length % 2 !== 0) throw new Error(`widen: ${bytes.length} bytes is not a whole number of 16-bit values`);
  const n = bytes.length / 2;
  const device = kernels.device;
  // Untracked: lives for this call only.
  const staging = device.createBuffer({ size: Math.max(4, alignedBytes(n, from)), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST, label: `${label}.src` });
  device.queue.writeBuffer(staging, 0, padTo4(bytes));
  const out = createTensor(device, [n], to, label);
  submitPass(kernels, (pass) => encodeWiden(kernels, pass, staging, from, out.buffer, to, n));
  staging.destroy(); // freed once the submitted work is done
  return out;
}

/** `bytes`, or a copy with a zero pad to a multiple of 4 bytes (writeBuffer's unit). */
export function padTo4(bytes: Uint8Array): Uint8Array {
  if (bytes.length % 4 === 0) return bytes;
  const padded = new Uint8Array(bytes.length + (4 - (bytes.length % 4)));
  padded.set(bytes);
  return padded;
}
