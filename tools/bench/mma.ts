// The tensor-core GEMM (src/engine/matmul-mma.ts) beside the SIMT kernels it replaces, in one run:
// every tiling is checked against float64 first (src/engine/matmul-mma-check.ts; a failing or
// uncompilable variant is reported and not timed), then timed at 4096^3 (dense f16 operands, and an
// f32 a converted to row-scaled f16 first) and at the training shapes of the fused NF4 matmul (forward
// x·Wᵀ and backward dy·W, f32 activations as training stores them).
import type { Gpu } from '../../src/engine/gpu.ts';
import type { Kernels } from '../../src/engine/kernels.ts';
import { chooseMma, encodeMmaMatmul, MMA_TILINGS, mmaSource, type MmaTiling } from '../../src/engine/matmul-mma.ts';
import { checkLmHeadMma, checkMmaMatmul, checkMmaRows, mmaCases, mmaSourcesDigest, type LmHeadMmaCheck, type MmaCheck, type MmaRowsCheck } from '../../src/engine/matmul-mma-check.ts';
import { encodeMatmul } from '../../src/engine/matmul.ts';
import { encodeNf4Matmul, encodeNf4MatmulBackward } from '../../src/engine/nf4-matmul.ts';
import { destroyNf4 } from '../../src/engine/nf4.ts';
import { specialise } from '../../src/engine/kernels.ts';
import { createTensor } from '../../src/engine/tensor.ts';
import { randomNf4, randomTensor } from './engine.ts';
import { rotationCopies, timePass } from './timing.ts';

/** Timed at every shape beside chooseMma's tiling, as a reference (the NF4 choice until session 7). */
const REFERENCE_TILING = MMA_TILINGS['128x128-w8-k64'];

export interface MmaBenchResult {
  op: 'mma';
  tiling: string;
  /** What ran: 'dense-f16', 'dense-f32in', 'nf4-forward', 'nf4-backward', and 'simt-…' for the kernels it replaces. */
  what: string;
  /** [m, k, n]. */
  shape: number[];
  ms: number;
  tflops: number;
}

export interface MmaBenchReport {
  op: 'mma-report';
  /** mmaSourcesDigest() of the shaders checked (tests/fixtures/mma keeps a report for the tree's digest). */
  digest: string;
  checks: (MmaCheck & { tiling: string })[];
  /** The lm_head loss and backward on the tensor cores against float64. */
  lmHead?: LmHeadMmaCheck;
  /** x's f16 rows and three adapters' u's from one down dispatch (q/k/v's), against float64. */
  rows?: MmaRowsCheck;
  compileErrors: Record<string, string>;
  results: MmaBenchResult[];
}

/** Training shapes [tokens, in, out]: the 8B's MLP up/gate and q, the 1B's MLP. */
export const MMA_SHAPES: [number, number, number][] = [
  [2048, 4096, 14336],
  [2048, 4096, 4096],
  [2048, 2048, 8192],
  [2048, 4096, 1024], // the 8B's k and v: chooseMma's small grid
  [2048, 2048, 512], // the 1B's
];

async function compileErrors(gpu: Gpu, name: string, code: string): Promise<string | undefined> {
  const module = gpu.device.createShaderModule({ code, label: name });
  const info = await module.getCompilationInfo();
  const errors = info.messages.filter((m) => m.type === 'error');
  return errors.length ? errors.map((m) => `${m.lineNum}:${m.linePos} ${m.message}`).join('\n') : undefined;
}

export async function benchMma(gpu: Gpu, kernels: Kernels, sizes: number[], repeats: number, quick: boolean, checksOnly = false): Promise<MmaBenchReport> {
  const report: MmaBenchReport = { op: 'mma-report', digest: mmaSourcesDigest(), checks: [], compileErrors: {}, results: [] };
  if (!gpu.info.mmaF16) {
    console.log('mma: this device has no f16 16x16x16 subgroup matrices; skipped');
    return report;
  }
  const time = async (tiling: string, what: string, shape: number[], encode: (pass: GPUComputePassEncoder, i: number) => void) => {
    const seconds = await timePass(gpu, repeats, encode);
    const [m, k, n] = shape;
    const r = { op: 'mma' as const, tiling, what, shape, ms: seconds * 1e3, tflops: (2 * m * k * n) / seconds / 1e12 };
    report.results.push(r);
    console.log(`mma ${tiling} ${what} [${shape.join('x')}]: ${r.ms.toFixed(3)} ms, ${r.tflops.toPrecision(3)} TFLOP/s`);
  };
  const good: [string, MmaTiling][] = [];
  for (const [name, tiling] of Object.entries(MMA_TILINGS)) {
    let broken = false;
    for (const kind of ['dense', 'nf4'] as const) {
      for (const transB of [true, false]) {
        for (const [vec, scaled] of [[true, true], [false, false]]) {
          const v = { kind, transB, vec, wide: vec && kind === 'dense', scaled, lora: scaled ? tiling.bk / 16 + 1 : 0, vecOut: vec };
          const err = await compileErrors(gpu, name, specialise(`alias R = f32;\n${mmaSource(v, tiling)}`, 'f32'));
          if (err) {
            report.compileErrors[`${name}/${JSON.stringify(v)}`] = err;
            console.log(`mma ${name} ${JSON.stringify(v)} does not compile:\n${err}`);
            broken = true;
          }
        }
      }
    }
    if (broken) continue;
    let ok = true;
    for (const c of mmaCases(gpu.info.f16)) {
      gpu.device.pushErrorScope('validation');
      const check = await checkMmaMatmul(kernels, c, tiling);
      const error = await gpu.device.popErrorScope();
      if (error) report.compileErrors[`${name}/${c.b}/${c.transB ? 'T' : 'N'}/${c.dtype}`] = error.message;
      report.checks.push({ ...check, tiling: name });
      ok &&= check.ok && !error;
      console.log(`mma ${name} check ${c.b} ${c.transB ? 'T' : 'N'} ${c.dtype}->${c.outDtype}${c.bias ? ' +bias' : ''}${c.accumulate ? ' +acc' : ''}${c.lora ? ` +lora r${c.lora.r}` : ''} [${c.m}x${c.ki}x${c.nc}]: ` +
        `${check.errRounded.toExponential(2)} (rounded operands), ${check.errExact.toExponential(2)} (exact) ${check.ok ? 'ok' : 'FAILED'}`);
    }
    if (ok) good.push([name, tiling]);
  }
  // The configuration the engine runs: chooseMma's tiling and load width per product.
  for (const c of mmaCases(gpu.info.f16)) {
    const check = await checkMmaMatmul(kernels, c);
    report.checks.push({ ...check, tiling: 'chosen' });
    console.log(`mma chosen check ${c.b} ${c.transB ? 'T' : 'N'} ${c.dtype}->${c.outDtype} [${c.m}x${c.ki}x${c.nc}]: ${check.errRounded.toExponential(2)}, ${check.errExact.toExponential(2)} ${check.ok ? 'ok' : 'FAILED'}`);
  }

  report.lmHead = await checkLmHeadMma(kernels);
  console.log(`mma lm_head check: lse ${report.lmHead.lseErr.toExponential(2)}, loss ${report.lmHead.lossErr.toExponential(2)}, dh ${report.lmHead.dhErr.toExponential(2)} ${report.lmHead.ok ? 'ok' : 'FAILED'}`);
  report.rows = await checkMmaRows(kernels);
  console.log(`mma rows check (one down dispatch, r ${report.rows.r.join('/')}): ${report.rows.errRounded.toExponential(2)}, ${report.rows.errExact.toExponential(2)} ${report.rows.ok ? 'ok' : 'FAILED'}`);
  if (checksOnly) return report;

  // Dense square products: f16 operands (the tensor cores' headline), and an f32 a (converted to
  // row-scaled f16 first) against the same f16 b.
  for (const n of sizes) {
    const copies = rotationCopies(2 * n * n * 2);
    const as = Array.from({ length: copies }, (_, i) => randomTensor(kernels, [n, n], 'f16', 1, 10 + i, 'bench.mma.a'));
    const a32 = Array.from({ length: copies }, (_, i) => randomTensor(kernels, [n, n], 'f32', 1, 30 + i, 'bench.mma.a32'));
    const bs = Array.from({ length: copies }, (_, i) => randomTensor(kernels, [n, n], 'f16', 1, 20 + i, 'bench.mma.b'));
    const c = createTensor(kernels.device, [n, n], 'f16', 'bench.mma.c');
    const c32 = createTensor(kernels.device, [n, n], 'f32', 'bench.mma.c32');
    for (const [name, tiling] of good) {
      await time(name, 'dense-f16', [n, n, n], (pass, i) =>
        encodeMmaMatmul(kernels, pass, as[i % copies], { kind: 'dense', b: bs[i % copies] }, c, { m: n, nc: n, ki: n, transB: true }, { tiling }),
      );
      await time(name, 'dense-f32a', [n, n, n], (pass, i) =>
        encodeMmaMatmul(kernels, pass, a32[i % copies], { kind: 'dense', b: bs[i % copies] }, c32, { m: n, nc: n, ki: n, transB: true }, { tiling }),
      );
    }
    await time('simt', 'simt-dense-f16', [n, n, n], (pass, i) => encodeMatmul(kernels, pass, as[i % copies], bs[i % copies], c, { m: n, n, k: n, transB: true, tensorCores: false }));
    for (const t of [...as, ...a32, ...bs, c, c32]) t.buffer.destroy();
  }

  // The fused NF4 matmul at training shapes: every tiling at the first shape (and, for two tilings, each
  // choice of vector loads and row scaling, to see what each costs), the default tiling at the others.
  const shapes = quick ? [[256, 512, 1792] as [number, number, number]] : MMA_SHAPES;
  for (const [si, [tokens, inp, out]] of shapes.entries()) {
    const copies = rotationCopies((out * inp) / 2);
    const ws = Array.from({ length: copies }, (_, i) => randomNf4(kernels, out, inp, 100 + i));
    const x = randomTensor(kernels, [tokens, inp], 'f32', 1, 7, 'bench.mma.x');
    const y = createTensor(kernels.device, [tokens, out], 'f32', 'bench.mma.y');
    const shape = [tokens, inp, out];
    const chosen = [chooseMma('nf4', tokens, out).tiling, chooseMma('nf4', tokens, inp).tiling, MMA_TILINGS['256x128-w8-k32']];
    const tilings = si === 0 ? good : good.filter(([, t]) => chosen.includes(t) || t === REFERENCE_TILING);
    for (const [name, tiling] of tilings) {
      // The engine's vector loads at every shape; scalar ones too at the first (what they save).
      const forces: { tiling: MmaTiling; vec?: boolean }[] = [{ tiling, vec: true }];
      if (si === 0) forces.push({ tiling, vec: false });
      for (const force of forces) {
        const label = force.vec ? `${name}+vec` : name;
        await time(label, 'nf4-forward', shape, (pass, i) => encodeMmaMatmul(kernels, pass, x, { kind: 'nf4', w: ws[i % copies] }, y, { m: tokens, nc: out, ki: inp, transB: true }, force));
        await time(label, 'nf4-backward', shape, (pass, i) => encodeMmaMatmul(kernels, pass, y, { kind: 'nf4', w: ws[i % copies] }, x, { m: tokens, nc: inp, ki: out, transB: false }, force));
      }
    }
    await time('simt', 'simt-nf4-forward', shape, (pass, i) => encodeNf4Matmul(kernels, pass, x, ws[i % copies], y, { kernel: 'tiled', tensorCores: false }));
    await time('simt', 'simt-nf4-backward', shape, (pass, i) => encodeNf4MatmulBackward(kernels, pass, y, ws[i % copies], x, { tensorCores: false }));
    for (const w of ws) destroyNf4(w);
    x.buffer.destroy();
    y.buffer.destroy();
  }
  return report;
}
