// NF4 quantization throughput on the GPU: the kernel the loader runs on every frozen linear as it
// streams in (encodeQuantizeNf4, block 64), timed on whole weight matrices. The figure is GB/s of
// 16-bit input (numel * 2 bytes per second, the issue's unit, whatever the storage type); the
// bytes the kernel really reads (f32 input: 4 per element) are reported next to it. Before timing,
// each storage type is checked bit-exact against the CPU reference (quantizeNf4).
import type { Gpu } from '../../src/engine/gpu.ts';
import type { Kernels } from '../../src/engine/kernels.ts';
import { createNf4Weight, destroyNf4, encodeQuantizeNf4, quantizeNf4Gpu, readNf4 } from '../../src/engine/nf4.ts';
import { BYTES, uploadTensor, type DType, type Tensor } from '../../src/engine/tensor.ts';
import { quantizeNf4, roundToDtype, type Nf4SourceDtype } from '../../src/io/nf4.ts';
import { randomF32 } from '../../src/util/random.ts';
import { rotationCopies, timePass } from './timing.ts';

/** Llama 3.1 8B's MLP (gate/up [14336, 4096]) and attention (q/o [4096, 4096]) shapes. */
export const NF4_SHAPES: [number, number][] = [
  [14336, 4096],
  [4096, 4096],
];

export interface Nf4Result {
  op: 'nf4-quantize';
  shape: number[];
  /** Storage type of the input on the GPU (the loader quantizes from f32 chunks). */
  dtype: DType;
  /** Dispatches per quantization (inputs past maxStorageBufferBindingSize go in chunks). */
  chunks: number;
  ms: number;
  /** numel * 2 bytes / second: GB/s of 16-bit input. */
  gbps16: number;
  /** Bytes the kernel reads and writes (input + NF4 codes + f32 absmax) per second. */
  gbpsMoved: number;
  elementsPerSecond: number;
  bitExact: true;
}

const SOURCE: Record<DType, Nf4SourceDtype> = { f32: 'float32', f16: 'float16' };

/** The GPU quantization of an awkward shape (a partial last block) equals the CPU reference. */
async function checkBitExact(kernels: Kernels, dtype: DType): Promise<void> {
  const shape = [37, 100];
  const values = randomF32(3700, 7).map((v) => v * 0.05);
  const x = uploadTensor(kernels.device, values, shape, dtype, 'bench.nf4.check');
  const w = quantizeNf4Gpu(kernels, x, { dtype: SOURCE[dtype] });
  const got = await readNf4(kernels.device, w);
  const want = quantizeNf4(roundToDtype(values, SOURCE[dtype]), { shape, dtype: SOURCE[dtype] });
  x.buffer.destroy();
  destroyNf4(w);
  const same = Buffer.from(got.packed).equals(Buffer.from(want.packed)) && got.absmax.every((a, i) => Object.is(a, want.absmax[i]));
  if (!same) throw new Error(`NF4 quantization (${dtype} input) differs from the CPU reference; not timing it`);
}

async function benchOne(gpu: Gpu, kernels: Kernels, shape: [number, number], dtype: DType, repeats: number): Promise<Nf4Result> {
  const n = shape[0] * shape[1];
  const inBytes = n * BYTES[dtype];
  // Inputs larger than one storage binding are quantized in chunks, one dispatch each, as the
  // loader does (weights.ts); every chunk a whole number of 4096 elements.
  const { maxStorageBufferBindingSize, maxBufferSize } = gpu.info.limits;
  const chunkElems = Math.floor(Math.min(maxStorageBufferBindingSize, maxBufferSize) / BYTES[dtype] / 4096) * 4096;
  const chunks = Math.ceil(n / chunkElems);
  const copies = rotationCopies(inBytes);
  const values = randomF32(n, 1).map((v) => v * 0.05);
  const xs: Tensor[][] = Array.from({ length: copies }, () =>
    Array.from({ length: chunks }, (_, c) => {
      const part = values.subarray(c * chunkElems, Math.min(n, (c + 1) * chunkElems));
      return uploadTensor(gpu.device, part, [part.length], dtype, 'bench.nf4.x');
    }),
  );
  const w = createNf4Weight(gpu.device, shape, { dtype: SOURCE[dtype], label: 'bench.nf4' });
  gpu.device.pushErrorScope('validation');
  const seconds = await timePass(gpu, repeats, (pass, i) => {
    xs[i % copies].forEach((x, c) => encodeQuantizeNf4(kernels, pass, x, w, c * chunkElems));
  });
  const error = await gpu.device.popErrorScope();
  if (error) throw new Error(`nf4 quantize [${shape}] ${dtype}: ${error.message}`);
  const moved = inBytes + w.words.size + w.absmax.size;
  for (const x of xs.flat()) x.buffer.destroy();
  destroyNf4(w);
  return {
    op: 'nf4-quantize',
    shape,
    dtype,
    chunks,
    ms: seconds * 1e3,
    gbps16: (n * 2) / seconds / 1e9,
    gbpsMoved: moved / seconds / 1e9,
    elementsPerSecond: n / seconds,
    bitExact: true,
  };
}

export async function benchNf4(gpu: Gpu, kernels: Kernels, repeats: number, shapes = NF4_SHAPES): Promise<Nf4Result[]> {
  const results: Nf4Result[] = [];
  for (const dtype of ['f16', 'f32'] as const) {
    if (dtype === 'f16' && !gpu.info.f16) continue;
    await checkBitExact(kernels, dtype);
    for (const shape of shapes) {
      const r = await benchOne(gpu, kernels, shape, dtype, repeats);
      results.push(r);
      console.log(
        `nf4 quantize [${shape.join(', ')}] ${dtype} input${r.chunks > 1 ? ` (${r.chunks} chunks)` : ''}: ${r.ms.toFixed(3)} ms, ${r.gbps16.toFixed(2)} GB/s of 16-bit input ` +
          `(${r.gbpsMoved.toFixed(2)} GB/s moved)`,
      );
    }
  }
  return results;
}
