// Attention on subgroup matrices (shaders/attention-mma.wgsl): the tensor-core forward that
// encodeAttention takes, in place of the SIMT kernel, where the device has f16 16x16x16 subgroup
// matrices (GpuInfo.mmaF16) and the head dim is a multiple of 16 (every Llama's: 64 or 128), in f16
// storage (inference) or f32 (training), whose q, k, v it rounds to f16. Same tensors, shapes and masks as attention.ts; this file generates the
// unrolled products of each head dim.
import type { AttentionShape } from './attention.ts';
import type { GpuInfo } from './gpu.ts';
import type { DType } from './tensor.ts';
import type { Kernel, Kernels } from './kernels.ts';
import template from '../../shaders/attention-mma.wgsl?raw';

/** Query rows per workgroup (the shader's BR). */
export const ATTENTION_MMA_ROWS = 64;

/** Whether the tensor-core attention takes tensors of this type and head dim on this device. */
export function attentionMmaApplies(info: GpuInfo, dtype: DType, headDim: number): boolean {
  return info.mmaF16 && info.subgroups && (dtype === 'f16' || dtype === 'f32') && headDim % 16 === 0 && headDim <= 128;
}

/** The forward's shape as attention.ts has checked it; skv = the keys read (those in use at the front of a KV cache). */
export type AttentionMmaParams = Required<Omit<AttentionShape, 'scale'>> & { scaleLog2: number };

/** Records the forward: bindings q, k, v, segment ids (or a stand-in), o, lse. */
export function encodeAttentionMma(
  kernels: Kernels,
  pass: GPUComputePassEncoder,
  buffers: { q: GPUBuffer; k: GPUBuffer; v: GPUBuffer; seg: GPUBuffer; o: GPUBuffer; lse: GPUBuffer },
  s: AttentionMmaParams,
  useSegments: boolean,
  /** Storage type of q, k, v and o. */
  dtype: DType,
): void {
  const kernel = forwardKernel(kernels, s.headDim, dtype);
  const params = {
    tq: s.tq,
    skv: s.skv,
    heads: s.heads,
    kv_heads: s.kvHeads,
    causal_offset: s.causalOffset,
    window: s.window,
    use_segments: useSegments ? 1 : 0,
    scale_log2: s.scaleLog2,
  };
  const { q, k, v, seg, o, lse } = buffers;
  kernels.dispatch(pass, kernel, [q, k, v, seg, o, lse], params, [s.heads, Math.ceil(s.tq / ATTENTION_MMA_ROWS), s.batch]);
}

const forwardKernels = new WeakMap<Kernels, Map<string, Kernel>>();

function forwardKernel(kernels: Kernels, headDim: number, dtype: DType): Kernel {
  let cache = forwardKernels.get(kernels);
  if (!cache) forwardKernels.set(kernels, (cache = new Map()));
  const name = `attention-mma(D=${headDim},S=${dtype})`;
  let kernel = cache.get(name);
  if (!kernel) {
    // The storage type is S (T is unused).
    kernel = kernels.get({ name, source: attentionMmaSource(headDim, dtype), dtype: 'f32' });
    cache.set(name, kernel);
  }
  return kernel;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** Matrix loads and stores, spelled once. */
const left = (buf: string, offset: number, stride: string) => `subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&${buf}, ${offset}u, ${stride})`;
const right = (buf: string, offset: number, stride: string, layout: 'row_major' | 'col_major') =>
  `subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, ${layout}>(&${buf}, ${offset}u, ${stride})`;
const store = (buf: string, offset: number, m: string, stride: string) => `subgroupMatrixStore<row_major>(&${buf}, ${offset}u, ${m}, ${stride});`;
const mma = (acc: string, l: string, r: string) => `${acc} = subgroupMatrixMultiplyAccumulate(${l}, ${r}, ${acc});`;

const sources = new Map<string, string>();

/** The forward's whole shader for a head dim (a multiple of 16 up to 128) and storage type (f16 or f32). */
export function attentionMmaSource(headDim: number, dtype: DType): string {
  const key = `${headDim},${dtype}`;
  let src = sources.get(key);
  if (!src) sources.set(key, (src = generateForward(headDim, dtype)));
  return src;
}

function generateForward(D: number, dtype: DType): string {
  if (dtype !== 'f16' && dtype !== 'f32') throw new Error(`attention mma: storage type ${dtype} is not f16 or f32`);
  if (D % 16 !== 0 || D > 128 || D < 16) throw new Error(`attention mma: head dim ${D} is not a multiple of 16 up to 128`);
  const ds = D / 16; // 16-wide steps along the head dim
  const shares = D / 8; // vec4 shares per invocation of a 64-row tile
  const lines = (xs: string[], indent: string) => xs.join(`\n${indent}`);
  const fetchKv = (fromV: boolean, j0: string) => range(shares).map((s) => `x${s} = fetch_kv(${fromV}, tid, ${s}u, ${j0}, b, kvh);`);
  // s = q·kᵀ for the 64 keys of the tile: kᵀ's 16x16 blocks are column-major right matrices of k's rows.
  // Products into different result matrices back to back (one into the same waits for the last).
  const sProduct = [
    '{',
    ...range(4).map((j) => `  var s${j} = subgroup_matrix_result<f32, 16, 16>();`),
    ...range(ds).flatMap((d) => range(4).map((j) => `  ${mma(`s${j}`, `qm${d}`, right(`tile[${j}]`, 16 * d, 'SK', 'col_major'))}`)),
    ...range(4).map((j) => `  ${store('stage[sg]', 16 * j, `s${j}`, 'SS')}`),
    '}',
  ];
  // o += p·v: p's four 16-key blocks (left) times v's rows (right, row-major).
  const pvProduct = [
    '{',
    ...range(4).map((j) => `  let pm${j} = ${left('pw[sg]', 16 * j, 'SP')};`),
    ...range(4).flatMap((j) => range(ds).map((d) => `  ${mma(`acc${d}`, `pm${j}`, right(`tile[${j}]`, 16 * d, 'SK', 'row_major'))}`)),
    '}',
  ];
  // o in groups of up to four 16-column blocks through the stage.
  const oStore = range(Math.ceil(ds / 4)).flatMap((g) => {
    const blocks = range(Math.min(4, ds - 4 * g)).map((jj) => 4 * g + jj);
    return [
      'workgroupBarrier();',
      ...blocks.map((d, jj) => store('stage[sg]', 16 * jj, `acc${d}`, 'SS')),
      'workgroupBarrier();',
      'if (i < p.tq) {',
      `  let base = ((b * p.tq + i) * p.heads + h) * D + ${64 * g}u;`,
      `  for (var e = 0u; e < ${8 * blocks.length}u; e++) {`,
      '    let c = 2u * e + hb;',
      '    o[base + c] = S(stage[sg][rl * SS + c] * inv);',
      '  }',
      '}',
    ];
  });
  const header = [
    'enable f16;',
    'enable subgroups;',
    'enable chromium_experimental_subgroup_matrix;',
    // Offsets come from the invocation index, uniform within each 32-wide subgroup (mmaF16 checks the width).
    'diagnostic(off, chromium.subgroup_matrix_uniformity);',
    `const D = ${D}u;`,
    `const SK = ${D + 8}u; // row stride of the tile (f16)`,
    `const SH = ${shares}u; // vec4 shares per invocation of a 64-row tile`,
    `alias S = ${dtype};`,
    dtype === 'f16'
      ? 'fn to_f16(x: vec4<f16>) -> vec4<f16> { return x; }'
      : '// Finite f32 beyond f16\'s range becomes its largest value, not infinity (never reached by activations).\nfn to_f16(x: vec4f) -> vec4<f16> { return vec4<f16>(clamp(x, vec4f(-65504.0), vec4f(65504.0))); }',
    '',
  ].join('\n');
  const body = template
    .replace('//{{Q_FETCH}}', 'for (var s = 0u; s < SH; s++) { store_tile(tid, s, fetch_q(tid, s, q0, b, h)); }')
    .replace('//{{Q_LOAD}}', lines(range(ds).map((d) => `let qm${d} = ${left('tile[sg]', 16 * d, 'SK')};`), '  '))
    .replace('//{{KV_DECL}}', lines(range(shares).map((s) => `var x${s}: vec4<f16>;`), '  '))
    .replaceAll('//{{K_FETCH_FIRST}}', lines(fetchKv(false, 'wr.x'), '    '))
    .replaceAll('//{{K_FETCH_NEXT}}', lines(fetchKv(false, 'j0 + BC'), '      '))
    .replace('//{{V_FETCH}}', lines(fetchKv(true, 'j0'), '    '))
    .replaceAll('//{{KV_STORE}}', lines(range(shares).map((s) => `store_tile(tid, ${s}u, x${s});`), '    '))
    .replaceAll('//{{S_PRODUCT}}', lines(sProduct, '    '))
    .replace('//{{O_DECL}}', lines(range(ds).map((d) => `var acc${d} = subgroup_matrix_result<f32, 16, 16>();`), '  '))
    .replace('//{{PV_PRODUCT}}', lines(pvProduct, '    '))
    .replace('//{{O_STORE}}', lines(oStore, '  '));
  if (body.includes('//{{')) throw new Error('attention mma: a part of the template was left unfilled');
  return header + body;
}
