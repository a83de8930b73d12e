// GPU timing shared by the benchmarks: warm-up, then `repeats` runs of one compute pass each,
// recorded into one command buffer and submitted at once, each pass between its own GPU timestamps
// when the adapter has timestamp-query (else wall clock over the whole submission); the median run.
//
// The GPU is kept busy throughout, and the warm-up lasts until the runs stop getting faster: the
// H200 lets its SM clock sink to 345-1200 MHz from 1980 while a benchmark compiles or makes inputs,
// and takes a while under load to raise it again (nvidia-smi sampled every 0.25 s during a run:
// bench/tensor-core-notes.md, session 10). With three warm-up runs, each waiting for the last, a
// 1 ms GEMM read anywhere between 24.6 and 108 TFLOP/s. The warm-up submits back to back in
// batches of ~0.1 s, for at least WARMUP_SECONDS after a first run (which may compile the pipelines)
// and until two batches agree within 1%.
import type { Gpu } from '../../src/engine/gpu.ts';

export const WARMUP_SECONDS = 0.5;
const MAX_WARMUP_SECONDS = 10;
const MAX_BATCH = 2000;

/** Runs `encode` `repeats` times after warm-up; returns the median seconds of one run. */
export async function timePass(gpu: Gpu, repeats: number, encode: (pass: GPUComputePassEncoder, i: number) => void): Promise<number> {
  const { device } = gpu;
  let next = 0; // the run index passed to encode (benchmarks rotate their inputs by it)
  const submit = async (count: number, query?: GPUQuerySet): Promise<number> => {
    const encoder = device.createCommandEncoder();
    for (let r = 0; r < count; r++) {
      const pass = encoder.beginComputePass(query ? { timestampWrites: { querySet: query, beginningOfPassWriteIndex: 2 * r, endOfPassWriteIndex: 2 * r + 1 } } : undefined);
      encode(pass, next++);
      pass.end();
    }
    const t0 = performance.now();
    device.queue.submit([encoder.finish()]);
    await device.queue.onSubmittedWorkDone();
    return (performance.now() - t0) / 1e3;
  };

  let perRun = await submit(1); // may include compiling the pipelines: the warm-up's time starts after it
  const warmStart = performance.now();
  let before = Infinity;
  for (;;) {
    const seconds = (performance.now() - warmStart) / 1e3;
    const steady = Math.abs(perRun - before) <= 0.01 * before;
    if (seconds >= MAX_WARMUP_SECONDS || (seconds >= WARMUP_SECONDS && steady)) break;
    const count = Math.min(MAX_BATCH, Math.max(1, Math.ceil(0.1 / Math.max(perRun, 1e-6))));
    before = perRun;
    perRun = (await submit(count)) / count;
  }

  if (!gpu.info.timestamps) return (await submit(repeats)) / repeats;
  const query = device.createQuerySet({ type: 'timestamp', count: 2 * repeats });
  const bytes = 16 * repeats;
  const resolve = device.createBuffer({ size: bytes, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
  const read = device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  await submit(repeats, query);
  const encoder = device.createCommandEncoder();
  encoder.resolveQuerySet(query, 0, 2 * repeats, resolve, 0);
  encoder.copyBufferToBuffer(resolve, 0, read, 0, bytes);
  device.queue.submit([encoder.finish()]);
  await read.mapAsync(GPUMapMode.READ);
  const stamps = new BigUint64Array(read.getMappedRange());
  const samples = Array.from({ length: repeats }, (_, r) => Number(stamps[2 * r + 1] - stamps[2 * r]) / 1e9);
  read.unmap();
  query.destroy();
  resolve.destroy();
  read.destroy();
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
