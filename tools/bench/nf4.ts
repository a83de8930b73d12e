// NF4 quantization throughput on the GPU: the kernel the loader runs on every frozen linear as it
// streams in (encodeQuantizeNf4, block 64), timed on whole weight matrices. The figure is GB/s of
// 16-bit input (numel * 2 bytes per second, the issue's unit, whatever the storage type); the
// bytes the kernel really reads (f32 input: 4 per element) are reported next to it. Before timing,
// each storage type is checked bit-exact against the CPU reference (quantizeNf4).
// Then the decode GEMVs (benchDecodeGemv): the NF4 GEMV (nf4-gemv.ts) at the 8B's four projection
// shapes, one row of f16 x, every kernel variant (its time and result against the first's), as GB/s
// of NF4 weight read (codes + f32 absmax); and the one-row lm_head (lmhead.ts) as GB/s of E read.
// The GEMV before issue 10 read 103-125 GB/s in this measure, against 184-248 for the subgroup
// kernel (bench/h200-2026-11-29-gemv.txt), when each timed pass was one round of the copies.
import type { Gpu } from '../../src/engine/gpu.ts';
import { submitPass, type Kernels } from '../../src/engine/kernels.ts';
import { encodeLmHeadLogits } from '../../src/engine/lmhead.ts';
import { createNf4Weight, destroyNf4, encodeQuantizeNf4, quantizeNf4Gpu, readNf4, type Nf4GpuWeight } from '../../src/engine/nf4.ts';
import { encodeNf4Gemv, type Nf4GemvOptions } from '../../src/engine/nf4-gemv.ts';
import { BYTES, createTensor, readTensor, uploadTensor, type DType, type Tensor } from '../../src/engine/tensor.ts';
import { quantizeNf4, roundToDtype, type Nf4SourceDtype } from '../../src/io/nf4.ts';
import { randomF32 } from '../../src/util/random.ts';
import { randomTensor } from './engine.ts';
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

/** The quantization bench, then the decode GEMVs (printed; benchDecodeGemv returns their figures). */
export async function benchNf4(gpu: Gpu, kernels: Kernels, repeats: number, shapes = NF4_SHAPES): Promise<Nf4Result[]> {
  const results = await benchQuantize(gpu, kernels, repeats, shapes);
  await benchDecodeGemv(gpu, kernels, repeats);
  return results;
}

async function benchQuantize(gpu: Gpu, kernels: Kernels, repeats: number, shapes: [number, number][]): Promise<Nf4Result[]> {
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

/** Llama 3.1 8B's decode GEMVs, [out, in]: q_proj / o_proj, k_proj / v_proj, gate / up, down. */
export const NF4_GEMV_SHAPES: [number, number][] = [
  [4096, 4096],
  [1024, 4096],
  [14336, 4096],
  [4096, 14336],
];
/** How often each shape runs per 8B token (32 layers): q+o, k+v, gate+up, down. */
const PER_TOKEN = [64, 64, 64, 32];

/** The GEMV variants timed; the first the device runs is the baseline of the ratios ('subgroups', else 'workgroup'). */
const GEMV_VARIANTS: { name: string; opts: Nf4GemvOptions; subgroups?: true }[] = [
  { name: 'subgroups', opts: { subgroups: true }, subgroups: true },
  { name: 'subgroups wg256', opts: { subgroups: true, workgroupSize: 256 }, subgroups: true },
  { name: 'workgroup', opts: { subgroups: false } },
];
/** Passes of all the copies per timed pass: a pass of one round left the GPU idle between repeats
 * (its clocks down), and read ~3x slower than the same kernel inside decode. */
const GEMV_ROUNDS = 20;

export interface Nf4GemvResult {
  op: 'nf4-gemv' | 'lmhead-row';
  /** [out, in]. */
  shape: number[];
  /** Storage type of x and y (of h and E for the lm_head). */
  dtype: DType;
  variant: string;
  /** One dispatch, the median over repeats of a pass of several back to back. */
  ms: number;
  /** Weight bytes read (NF4 codes + f32 absmax; E for the lm_head) per second. */
  gbps: number;
  /** ms of the first variant / ms of this one. */
  speedupOverFirst?: number;
  /** max |y - y0| / max |y0|, y0 the first variant's result (for the lm_head the subgroup sum). */
  diffToFirst?: number;
}

/**
 * The decode GEMVs, as one 8B decode step runs them: y = x · Wᵀ for one row of x (f16 where the
 * device has it), W rotated over copies (out of L2), several dispatches per timed pass (as a
 * decode step records them). Every variant's y and time are compared with the first's.
 */
export async function benchDecodeGemv(gpu: Gpu, kernels: Kernels, repeats: number): Promise<Nf4GemvResult[]> {
  const dtype: DType = gpu.info.f16 ? 'f16' : 'f32';
  const variants = GEMV_VARIANTS.filter((v) => !v.subgroups || gpu.info.subgroups);
  const results: Nf4GemvResult[] = [];
  const perToken = new Map<string, number>();
  for (const [s, [out, inp]] of NF4_GEMV_SHAPES.entries()) {
    const bytes = (out * inp) / 2 + (out * inp / 64) * 4;
    const copies = rotationCopies(bytes);
    const ws: Nf4GpuWeight[] = Array.from({ length: copies }, (_, i) => randomCodes(kernels, out, inp, 200 + i));
    const x = randomTensor(kernels, [1, inp], dtype, 1, 9, 'bench.gemv.x');
    const y = createTensor(kernels.device, [1, out], dtype, 'bench.gemv.y');
    let base: { name: string; ms: number; y: Float32Array } | undefined;
    for (const v of variants) {
      kernels.device.pushErrorScope('validation');
      const got = await runOnce(kernels, (pass) => encodeNf4Gemv(kernels, pass, x, ws[0], y, v.opts), y);
      const rounds = (pass: GPUComputePassEncoder) => {
        for (let r = 0; r < GEMV_ROUNDS; r++) for (const w of ws) encodeNf4Gemv(kernels, pass, x, w, y, v.opts);
      };
      const seconds = (await timePass(gpu, repeats, rounds)) / (copies * GEMV_ROUNDS);
      const error = await kernels.device.popErrorScope();
      if (error) throw new Error(`nf4 gemv ${v.name} [${out}, ${inp}]: ${error.message}`);
      const r: Nf4GemvResult = { op: 'nf4-gemv', shape: [out, inp], dtype, variant: v.name, ms: seconds * 1e3, gbps: bytes / seconds / 1e9 };
      if (base) Object.assign(r, { speedupOverFirst: base.ms / r.ms, diffToFirst: relDiff(got, base.y) });
      else base = { name: v.name, ms: r.ms, y: got };
      results.push(r);
      perToken.set(v.name, (perToken.get(v.name) ?? 0) + PER_TOKEN[s] * r.ms);
      const agree =
        r.diffToFirst === undefined
          ? ''
          : `, ${r.speedupOverFirst!.toFixed(2)}x ${base!.name}, |y - y(${base!.name})| / max|y| ${r.diffToFirst.toExponential(1)}${r.diffToFirst <= 1e-2 ? '' : ' DIFFERS'}`;
      console.log(`nf4 gemv [${out}, ${inp}] ${dtype} ${v.name}: ${r.ms.toFixed(4)} ms, ${r.gbps.toPrecision(3)} GB/s${agree}`);
    }
    for (const w of ws) destroyNf4(w);
    x.buffer.destroy();
    y.buffer.destroy();
  }
  for (const [name, ms] of perToken) console.log(`nf4 gemv ${name}: ${ms.toFixed(3)} ms of NF4 GEMVs per 8B token (32 layers x 7 projections)`);
  results.push(...(await benchLmHeadRow(gpu, kernels, repeats, dtype)));
  return results;
}

/**
 * The one-row lm_head at Llama 3's hidden size over a quarter of its 128256-row vocabulary (the
 * kernel streams chunk after chunk; the whole E would take 2 GB of copies), both sums.
 */
async function benchLmHeadRow(gpu: Gpu, kernels: Kernels, repeats: number, dtype: DType): Promise<Nf4GemvResult[]> {
  const [vocab, hidden] = [32768, 4096];
  const bytes = vocab * hidden * BYTES[dtype];
  const copies = rotationCopies(bytes);
  const es = Array.from({ length: copies }, (_, i) => randomTensor(kernels, [vocab, hidden], dtype, 0.02, 30 + i, 'bench.lmhead.E'));
  const h = randomTensor(kernels, [1, hidden], dtype, 1, 31, 'bench.lmhead.h');
  const out = createTensor(kernels.device, [1, vocab], 'f32', 'bench.lmhead.out');
  const results: Nf4GemvResult[] = [];
  let base: Float32Array | undefined;
  for (const subgroups of gpu.info.subgroups ? [true, false] : [false]) {
    const variant = subgroups ? 'subgroups' : 'workgroup';
    const got = await runOnce(kernels, (pass) => encodeLmHeadLogits(kernels, pass, h, es[0], out, { subgroups }), out);
    const seconds = (await timePass(gpu, repeats, (pass) => es.forEach((e) => encodeLmHeadLogits(kernels, pass, h, e, out, { subgroups })))) / copies;
    const r: Nf4GemvResult = { op: 'lmhead-row', shape: [vocab, hidden], dtype, variant, ms: seconds * 1e3, gbps: bytes / seconds / 1e9 };
    if (base) r.diffToFirst = relDiff(got, base);
    else base = got;
    results.push(r);
    console.log(
      `lm_head one row [${vocab}, ${hidden}] ${dtype} ${variant}: ${r.ms.toFixed(4)} ms, ${r.gbps.toPrecision(3)} GB/s ` +
        `(${((r.ms * 128256) / vocab).toFixed(3)} ms for Llama 3's 128256 rows)` +
        (r.diffToFirst === undefined ? '' : `, |y - y(subgroups)| / max|y| ${r.diffToFirst.toExponential(1)}${r.diffToFirst <= 1e-5 ? '' : ' DIFFERS'}`),
    );
  }
  for (const e of es) e.buffer.destroy();
  h.buffer.destroy();
  out.buffer.destroy();
  return results;
}

/**
 * An NF4 weight [out, inp] of random codes and absmax in [0.01, 0.05): what a GEMV reads, without
 * quantizing a dense matrix (which would not fit one storage binding on small devices).
 */
function randomCodes(kernels: Kernels, out: number, inp: number, seed: number): Nf4GpuWeight {
  const w = createNf4Weight(kernels.device, [out, inp], { label: 'bench.gemv.w' });
  let state = seed >>> 0 || 1;
  const next = () => (state = (Math.imul(state, 1664525) + 1013904223) >>> 0);
  const words = new Uint32Array(w.words.size / 4).map(next);
  const absmax = new Float32Array(w.absmax.size / 4).map(() => 0.01 + (next() / 2 ** 32) * 0.04);
  kernels.device.queue.writeBuffer(w.words, 0, words);
  kernels.device.queue.writeBuffer(w.absmax, 0, absmax);
  return w;
}

/** Runs `encode` once and reads `y` back as f32. */
async function runOnce(kernels: Kernels, encode: (pass: GPUComputePassEncoder) => void, y: Tensor): Promise<Float32Array> {
  submitPass(kernels, encode);
  return readTensor(kernels.device, y);
}

function relDiff(a: Float32Array, b: Float32Array): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / scale;
}
