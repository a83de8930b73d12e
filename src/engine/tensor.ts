// GPU tensors: a storage buffer with a shape and a storage type. Row-major, no strides.
import { f16ArrayToF32, f32ArrayToF16 } from '../io/dtype.ts';
import { categoryOfLabel, trackedBuffer, type MemoryCategory } from './gpu-memory.ts';

export type DType = 'f32' | 'f16';

export interface Tensor {
  buffer: GPUBuffer;
  shape: number[];
  dtype: DType;
}

export const BYTES: Record<DType, number> = { f32: 4, f16: 2 };

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

// A function, not a constant: in Node the GPUBufferUsage global exists only once gpu.ts loaded Dawn.
function usage(): number {
  return GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
}

/**
 * A zero-filled tensor. Sizes are padded to 4 bytes, as WebGPU requires for copies. Its buffer is
 * counted in the device's GpuMemory under `category` (default: from the label, categoryOfLabel).
 */
export function createTensor(device: GPUDevice, shape: number[], dtype: DType, label?: string, category?: MemoryCategory): Tensor {
  const size = Math.max(4, align4(numel(shape) * BYTES[dtype]));
  return { buffer: trackedBuffer(device, { size, usage: usage(), label }, category ?? categoryOfLabel(label)), shape, dtype };
}

/** Uploads f32 values, converting to the tensor's storage type. */
export function uploadTensor(device: GPUDevice, data: Float32Array, shape: number[], dtype: DType, label?: string, category?: MemoryCategory): Tensor {
  if (data.length !== numel(shape)) throw new Error(`uploadTensor: ${data.length} values for shape [${shape}]`);
  const t = createTensor(device, shape, dtype, label, category);
  const typed = dtype === 'f32' ? data : f32ArrayToF16(data);
  const bytes = new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);
  // writeBuffer wants a multiple of 4 bytes; an odd number of f16 values needs one pad value.
  const padded = bytes.byteLength % 4 === 0 ? bytes : copyPadded(bytes);
  device.queue.writeBuffer(t.buffer, 0, padded);
  return t;
}

/**
 * Reads a tensor back as f32 values as the queue has it at the call: the copy is submitted before
 * the first await, so it sees what was submitted before and nothing submitted after, and the
 * promise can be awaited later while the GPU goes on with more work.
 */
export async function readTensor(device: GPUDevice, t: Tensor): Promise<Float32Array> {
  const n = numel(t.shape);
  const size = t.buffer.size;
  // Untracked: a staging buffer lives only for this call (gpu-memory.ts).
  const staging = device.createBuffer({ size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const encoder = device.createCommandEncoder();
  encoder.copyBufferToBuffer(t.buffer, 0, staging, 0, size);
  device.queue.submit([encoder.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const copy = staging.getMappedRange().slice(0);
  staging.unmap();
  staging.destroy();
  return t.dtype === 'f32' ? new Float32Array(copy, 0, n) : f16ArrayToF32(new Uint16Array(copy, 0, n));
}

function copyPadded(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(align4(bytes.byteLength));
  out.set(bytes);
  return out;
}

function align4(n: number): number {
  return Math.ceil(n / 4) * 4;
}

/** Throws unless `t` has exactly `shape`; `what` names it in the message. */
export function expectShape(kernel: string, t: Tensor, shape: readonly number[], what: string): void {
  if (t.shape.join() !== shape.join()) throw new Error(`${kernel}: ${what} has shape [${t.shape}], expected [${shape}]`);
}

/** A GPU buffer of `length` u32 values: token ids, position ids. */
export interface U32Tensor {
  buffer: GPUBuffer;
  length: number;
}

/** Uploads u32 values into a new storage buffer. */
export function uploadU32(device: GPUDevice, data: Uint32Array | readonly number[], label?: string): U32Tensor {
  const values = data instanceof Uint32Array ? data : Uint32Array.from(data);
  const buffer = device.createBuffer({
    size: Math.max(4, values.byteLength),
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    label,
  });
  device.queue.writeBuffer(buffer, 0, values);
  return { buffer, length: values.length };
}

/** Reads a u32 buffer back (the sampled ids). */
export async function readU32(device: GPUDevice, t: U32Tensor): Promise<Uint32Array> {
  const size = Math.max(4, t.length * 4);
  const staging = device.createBuffer({ size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const encoder = device.createCommandEncoder();
  encoder.copyBufferToBuffer(t.buffer, 0, staging, 0, size);
  device.queue.submit([encoder.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const ids = new Uint32Array(staging.getMappedRange().slice(0), 0, t.length);
  staging.unmap();
  staging.destroy();
  return ids;
}
