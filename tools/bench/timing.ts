// GPU timing shared by the benchmarks: GPU timestamps around one compute pass when the adapter has
// timestamp-query (else wall clock around submit + onSubmittedWorkDone), warm-up first, median of
// the repeats.
import type { Gpu } from '../../src/engine/gpu.ts';

export const WARMUP = 3;

/** Runs `encode` `repeats` times after warm-up; returns the median seconds of one run. */
export async function timePass(gpu: Gpu, repeats: number, encode: (pass: GPUComputePassEncoder, i: number) => void): Promise<number> {
  const { device } = gpu;
  const samples: number[] = [];
  const query = gpu.info.timestamps ? device.createQuerySet({ type: 'timestamp', count: 2 }) : undefined;
  const resolve = query && device.createBuffer({ size: 16, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
  const read = query && device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  for (let i = -WARMUP; i < repeats; i++) {
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass(query ? { timestampWrites: { querySet: query, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 } } : undefined);
    encode(pass, i + WARMUP);
    pass.end();
    if (query && resolve && read) {
      encoder.resolveQuerySet(query, 0, 2, resolve, 0);
      encoder.copyBufferToBuffer(resolve, 0, read, 0, 16);
    }
    const t0 = performance.now();
    device.queue.submit([encoder.finish()]);
    await device.queue.onSubmittedWorkDone();
    const wall = (performance.now() - t0) / 1e3;
    let seconds = wall;
    if (read) {
      await read.mapAsync(GPUMapMode.READ);
      const [begin, end] = new BigUint64Array(read.getMappedRange());
      seconds = Number(end - begin) / 1e9;
      read.unmap();
    }
    if (i >= 0) samples.push(seconds);
  }
  query?.destroy();
  resolve?.destroy();
  read?.destroy();
  return median(samples);
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** How many copies of an input of `bytes` keep a repeat's operands out of a warm L2 (2..8). */
export function rotationCopies(bytes: number): number {
  return Math.max(2, Math.min(8, Math.ceil((256 << 20) / bytes)));
}
