// Where the tensor-core GEMM's time goes, measured on the GEMM itself: the chosen kernel for the
// dense 4096^3 product and the NF4 forward and backward at the 8B's MLP shape, timed whole and with
// one part taken out of its k loop at a time (wrong results, by design: these only time). Tells the
// share of each part where the ceiling bench (mma-ceiling.ts) builds up from products alone.
//   base        the kernel the engine runs
//   zeros       the same on all-zero operands (the products' power draw depends on the data)
//   one-product one of the subgroup's result matrices multiplied per k step (TM x TN in the kernel):
//               the fetches, the staging and the barriers with almost no products
//   no-store    the shares fetched but not staged (the stores behind a condition that never holds)
//   no-fetch    the shares staged but made up in registers (no device loads)
//   no-barrier  the k loop's two barriers removed (races: timing only)
//   element-order  every lane stores its share in element order (as before session 12's storeLayout:
//               correct results, two- to four-way bank conflicts); a-/b-element-order: one tile only
//   b-other-layout  B's matrix loads read the same tile rows in the other layout (row- for column-major
//               and back): what the forward's column-major loads cost against the backward's row-major ones
//   no-output   the epilogue's stores to out left out (the staging and its barriers stay)
//   no-absmax   NF4 only: the k loop's absmax loads left out (every block's scale 1.0)
//   no-table    NF4 only: each code converted and scaled without the code's lookup (a subgroupShuffle
//               since session 11, a workgroup-memory read before; the multiply and the rounding stay)
import type { Gpu } from '../../src/engine/gpu.ts';
import type { Kernels } from '../../src/engine/kernels.ts';
import { encodeMmaMatmul, type MmaOperand, type MmaMatmulShape } from '../../src/engine/matmul-mma.ts';
import { destroyNf4 } from '../../src/engine/nf4.ts';
import { createTensor, type Tensor } from '../../src/engine/tensor.ts';
import { randomNf4, randomTensor } from './engine.ts';
import { rotationCopies, timePass } from './timing.ts';

export interface MmaAblateResult {
  op: 'mma-ablate';
  what: 'dense-f16' | 'nf4-forward' | 'nf4-backward';
  variant: string;
  /** [m, k, n]. */
  shape: number[];
  ms: number;
  tflops: number;
}

/** Replaces `pattern` in `source`, throwing if it is not there (an edit that silently did nothing would time the base kernel). */
function edit(source: string, pattern: RegExp, replacement: string): string {
  const out = source.replace(pattern, replacement);
  if (out === source) throw new Error(`mma ablate: ${pattern} not found in the shader`);
  return out;
}

export const EDITS: Record<string, (s: string) => string> = {
  'one-product': (s) => edit(s, /\n\s*acc(?!0_0 )\d+_\d+ = subgroupMatrixMultiplyAccumulate\([^;]*;/g, ''),
  'no-store': (s) => edit(s, /if \(more\) \{(\s*)store_a/, 'if (more && p.accumulate == 7u) {$1store_a'),
  'no-fetch': (s) =>
    edit(
      edit(s, /fn fetch_a_in\(r: u32, k: u32\) -> vec4<f16> \{[^\n]*\}/, 'fn fetch_a_in(r: u32, k: u32) -> vec4<f16> { return vec4<f16>(f16(r & 7u), f16(k & 15u), 1.0h, 0.5h); }'),
      /fn fetch_b_in\(tid: u32, i: u32, k0: u32, col0: u32\) -> BShare \{[\s\S]*?\n\}/,
      s.includes('alias BShare = vec2<u32>')
        ? 'fn fetch_b_in(tid: u32, i: u32, k0: u32, col0: u32) -> BShare { return BShare(tid * 0x9e3779b9u + k0 + i, 0x3c000000u); }'
        : 'fn fetch_b_in(tid: u32, i: u32, k0: u32, col0: u32) -> BShare { return BShare(f16(tid & 7u), f16(k0 & 15u), f16(i), 0.25h); }',
    ),
  'no-barrier': (s) => edit(s, /\n {4}workgroupBarrier\(\);/g, ''),
  'no-output': (s) => edit(s, /if \(row < p\.m && col < p\.nc\) \{ store_out/g, 'if (row < p.m && col < p.nc && p.accumulate == 7u) { store_out'),
  'element-order': (s) => edit(s, /const ([AB])_ROT = \du;/g, 'const $1_ROT = 5u;').replace(/const A_SPREAD = \du;/, 'const A_SPREAD = 1u;'),
  // (no throw: a tile already in element order times as the base)
  'a-element-order': (s) => s.replace(/const A_ROT = \du;/, 'const A_ROT = 5u;').replace(/const A_SPREAD = \du;/, 'const A_SPREAD = 1u;'),
  'b-element-order': (s) => s.replace(/const B_ROT = \du;/, 'const B_ROT = 5u;'),
  // B's matrix loads in the other layout (the same 16 rows of the tile, read transposed: the cost of the layout alone)
  'b-other-layout': (s) => {
    const out = s.replace(/(subgroup_matrix_right<f16, 16, 16>, )(row|col)(_major>)/g, (_m, a: string, l: string, b: string) => `${a}${l === 'row' ? 'col' : 'row'}${b}`);
    if (out === s) throw new Error('mma ablate: no right-matrix loads in the shader');
    return out;
  },
};

/** Edits that only an NF4 B source has something to take out of. */
export const NF4_EDITS: Record<string, (s: string) => string> = {
  'no-absmax': (s) => edit(s, /(fn fetch_b_in[\s\S]*?)bitcast<u32>\(absmax\[e0 >> p\.bs_shift\]\)/, '$10x3c000000u'),
  'no-table': (s) => edit(s, /subgroupShuffle\(nf4_code_lane, \(v\.x >> nf4_shift\((\w)\)\) & 15u\)/, 'f32((v.x >> nf4_shift($1)) & 15u)'),
};

export async function benchMmaAblate(gpu: Gpu, kernels: Kernels, repeats: number): Promise<MmaAblateResult[]> {
  const results: MmaAblateResult[] = [];
  if (!gpu.info.mmaF16) {
    console.log('mma ablate: this device has no f16 16x16x16 subgroup matrices; skipped');
    return results;
  }
  const run = async (what: MmaAblateResult['what'], shape: number[], inputs: (zeros: boolean) => { a: Tensor[]; b: MmaOperand[]; out: Tensor; s: MmaMatmulShape; free: () => void }) => {
    for (const zeros of [false, true]) {
      const { a, b, out, s, free } = inputs(zeros);
      const edits = what === 'dense-f16' ? EDITS : { ...EDITS, ...NF4_EDITS };
      const variants: [string, ((s: string) => string) | undefined][] = zeros ? [['zeros', undefined]] : [['base', undefined], ...Object.entries(edits)];
      for (const [variant, source] of variants) {
        const force = source ? { edit: { tag: variant, source } } : {};
        const seconds = await timePass(gpu, repeats, (pass, i) => encodeMmaMatmul(kernels, pass, a[i % a.length], b[i % b.length], out, s, force));
        const [m, k, n] = shape;
        const r: MmaAblateResult = { op: 'mma-ablate', what, variant, shape, ms: seconds * 1e3, tflops: (2 * m * k * n) / seconds / 1e12 };
        results.push(r);
        console.log(`mma ablate ${what} ${variant} [${shape.join('x')}]: ${r.ms.toFixed(3)} ms, ${r.tflops.toPrecision(3)} TFLOP/s`);
      }
      free();
    }
  };

  const n = 4096;
  await run('dense-f16', [n, n, n], (zeros) => {
    const copies = rotationCopies(2 * n * n * 2);
    const make = (seed: number, label: string) => (zeros ? createTensor(kernels.device, [n, n], 'f16', label) : randomTensor(kernels, [n, n], 'f16', 1, seed, label));
    const a = Array.from({ length: copies }, (_, i) => make(10 + i, 'bench.ablate.a'));
    const bs = Array.from({ length: copies }, (_, i) => make(20 + i, 'bench.ablate.b'));
    const out = createTensor(kernels.device, [n, n], 'f16', 'bench.ablate.c');
    return { a, b: bs.map((b) => ({ kind: 'dense' as const, b })), out, s: { m: n, nc: n, ki: n, transB: true }, free: () => [...a, ...bs, out].forEach((t) => t.buffer.destroy()) };
  });

  const [tokens, inp, outDim] = [2048, 4096, 14336];
  for (const what of ['nf4-forward', 'nf4-backward'] as const) {
    const forward = what === 'nf4-forward';
    await run(what, [tokens, forward ? inp : outDim, forward ? outDim : inp], (zeros) => {
      const copies = rotationCopies((outDim * inp) / 2);
      const ws = Array.from({ length: copies }, (_, i) => randomNf4(kernels, outDim, inp, 100 + i));
      if (zeros) for (const w of ws) kernels.device.queue.writeBuffer(w.absmax, 0, new Float32Array(w.absmax.size / 4));
      const x = zeros ? createTensor(kernels.device, [tokens, inp], 'f32', 'bench.ablate.x') : randomTensor(kernels, [tokens, inp], 'f32', 1, 7, 'bench.ablate.x');
      const y = zeros ? createTensor(kernels.device, [tokens, outDim], 'f32', 'bench.ablate.y') : randomTensor(kernels, [tokens, outDim], 'f32', 1, 8, 'bench.ablate.y');
      const free = () => {
        ws.forEach(destroyNf4);
        x.buffer.destroy();
        y.buffer.destroy();
      };
      const b = ws.map((w) => ({ kind: 'nf4' as const, w }));
      return forward
        ? { a: [x], b, out: y, s: { m: tokens, nc: outDim, ki: inp, transB: true }, free }
        : { a: [y], b, out: x, s: { m: tokens, nc: inp, ki: outDim, transB: false }, free };
    });
  }
  return results;
}
