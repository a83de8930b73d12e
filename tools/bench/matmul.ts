// Tiled matmul throughput (TFLOP/s) on square shapes, f32 and (where the GPU has it) f16 storage.
import type { Gpu } from '../../src/engine/gpu.ts';
import type { Kernels } from '../../src/engine/kernels.ts';
import { encodeMatmul } from '../../src/engine/matmul.ts';
import { matmulSelfTest } from '../../src/engine/selftest.ts';
import { createTensor, type DType, type Tensor } from '../../src/engine/tensor.ts';
import { rotationCopies, timePass } from './timing.ts';

export interface MatmulResult {
  op: 'matmul';
  shape: number[];
  dtype: DType;
  ms: number;
  tflops: number;
  maxRelError: number;
  torchTflops?: number;
  ratioToTorch?: number;
}

async function benchOne(gpu: Gpu, kernels: Kernels, n: number, dtype: DType, repeats: number) {
  // Enough copies that one repeat's operands are out of L2 by the time they come round again.
  const copies = rotationCopies(2 * n * n * (dtype === 'f32' ? 4 : 2));
  const make = () => createTensor(gpu.device, [n, n], dtype, 'bench.matmul');
  const as: Tensor[] = Array.from({ length: copies }, make);
  const bs: Tensor[] = Array.from({ length: copies }, make);
  const c = make();
  const seconds = await timePass(gpu, repeats, (pass, i) =>
    encodeMatmul(kernels, pass, as[i % copies], bs[i % copies], c, { m: n, n, k: n, transB: true }),
  );
  for (const t of [...as, ...bs, c]) t.buffer.destroy();
  return { ms: seconds * 1e3, tflops: (2 * n ** 3) / seconds / 1e12 };
}

export async function benchMatmul(gpu: Gpu, kernels: Kernels, sizes: number[], repeats: number): Promise<MatmulResult[]> {
  const results: MatmulResult[] = [];
  for (const dtype of ['f32', 'f16'] as const) {
    if (dtype === 'f16' && !gpu.info.f16) continue;
    const check = await matmulSelfTest(gpu, { m: 257, n: 129, k: 300, dtype, transB: true, kernels });
    if (!check.ok) throw new Error(`matmul ${dtype} is wrong (max rel error ${check.maxRelError}); not timing it`);
    for (const n of sizes) {
      const r = await benchOne(gpu, kernels, n, dtype, repeats);
      results.push({ op: 'matmul', shape: [n, n, n], dtype, ...r, maxRelError: check.maxRelError });
      console.log(`matmul ${n}^3 ${dtype}: ${r.ms.toFixed(3)} ms, ${r.tflops.toPrecision(3)} TFLOP/s`);
    }
  }
  return results;
}
