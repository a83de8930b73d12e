// `npm run bench`: engine kernels timed on whatever GPU Dawn finds, written as JSON.
// Timing: GPU timestamps around the dispatches when the adapter has timestamp-query (else wall
// clock around submit + onSubmittedWorkDone), warm-up first, median of the repeats, and inputs
// rotated across several copies so repeats do not run out of a warm L2.
// With --torch FILE (written by tools/reference/bench_torch.py), PyTorch's figures for the same
// shapes are put side by side with ours as ratios.
import '../../tests/setup/node-globals.ts';
import { readFileSync, writeFileSync } from 'node:fs';
import { getGpu, describeGpu, type Gpu } from '../../src/engine/gpu.ts';
import { Kernels } from '../../src/engine/kernels.ts';
import { encodeMatmul } from '../../src/engine/matmul.ts';
import { matmulSelfTest } from '../../src/engine/selftest.ts';
import { createTensor, type DType, type Tensor } from '../../src/engine/tensor.ts';

interface Args {
  json?: string;
  torch?: string;
  sizes: number[];
  repeats: number;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { sizes: [1024, 2048, 4096], repeats: 20 };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i + 1];
    if (argv[i] === '--json') (args.json = v), i++;
    else if (argv[i] === '--torch') (args.torch = v), i++;
    else if (argv[i] === '--sizes') (args.sizes = v.split(',').map(Number)), i++;
    else if (argv[i] === '--repeats') (args.repeats = Number(v)), i++;
  }
  return args;
}

/** Runs `encode` `repeats` times after warm-up; returns the median seconds of one run. */
async function time(gpu: Gpu, repeats: number, encode: (pass: GPUComputePassEncoder, i: number) => void): Promise<number> {
  const { device } = gpu;
  const samples: number[] = [];
  const query = gpu.info.timestamps ? device.createQuerySet({ type: 'timestamp', count: 2 }) : undefined;
  const resolve = query && device.createBuffer({ size: 16, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
  const read = query && device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  for (let i = -3; i < repeats; i++) {
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass(query ? { timestampWrites: { querySet: query, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 } } : undefined);
    encode(pass, i + 3);
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
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)];
}

async function benchMatmul(gpu: Gpu, kernels: Kernels, n: number, dtype: DType, repeats: number) {
  // Enough copies that one repeat's operands are out of L2 by the time they come round again.
  const bytes = n * n * (dtype === 'f32' ? 4 : 2);
  const copies = Math.max(2, Math.min(8, Math.ceil((256 << 20) / (2 * bytes))));
  const make = () => createTensor(gpu.device, [n, n], dtype);
  const as: Tensor[] = Array.from({ length: copies }, make);
  const bs: Tensor[] = Array.from({ length: copies }, make);
  const c = make();
  const seconds = await time(gpu, repeats, (pass, i) =>
    encodeMatmul(kernels, pass, as[i % copies], bs[i % copies], c, { m: n, n, k: n, transB: true }),
  );
  for (const t of [...as, ...bs, c]) t.buffer.destroy();
  return { op: 'matmul', shape: [n, n, n], dtype, ms: seconds * 1e3, tflops: (2 * n ** 3) / seconds / 1e12 };
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const gpu = await getGpu();
  const kernels = new Kernels(gpu);
  console.log(describeGpu(gpu.info));
  const results: Record<string, unknown>[] = [];
  for (const dtype of ['f32', 'f16'] as const) {
    if (dtype === 'f16' && !gpu.info.f16) continue;
    const check = await matmulSelfTest(gpu, { m: 257, n: 129, k: 300, dtype, transB: true, kernels });
    if (!check.ok) throw new Error(`matmul ${dtype} is wrong (max rel error ${check.maxRelError}); not timing it`);
    for (const n of args.sizes) {
      const r = await benchMatmul(gpu, kernels, n, dtype, args.repeats);
      results.push({ ...r, maxRelError: check.maxRelError });
      console.log(`matmul ${n}^3 ${dtype}: ${r.ms.toFixed(3)} ms, ${r.tflops.toFixed(2)} TFLOP/s`);
    }
  }
  if (args.torch) {
    const torch = JSON.parse(readFileSync(args.torch, 'utf8')) as { results: { op: string; shape: number[]; dtype: string; tflops: number }[] };
    const torchDtype: Record<string, string> = { f32: 'float32', f16: 'float16' };
    for (const r of results) {
      const t = torch.results.find((x) => x.op === r.op && x.shape.join() === (r.shape as number[]).join() && x.dtype === torchDtype[r.dtype as string]);
      if (t) Object.assign(r, { torchTflops: t.tflops, ratioToTorch: (r.tflops as number) / t.tflops });
    }
  }
  const out = { date: new Date().toISOString(), gpu: gpu.info, timing: gpu.info.timestamps ? 'gpu-timestamps' : 'wall-clock', results };
  if (args.json) writeFileSync(args.json, JSON.stringify(out, null, 2));
  else console.log(JSON.stringify(out, null, 2));
  process.exit(0);
}

await main();
