// Attention on subgroup matrices: the tensor-core forward (shaders/attention-mma.wgsl) that
// encodeAttention takes in place of the SIMT kernel, and the backward
// (shaders/attention-mma-backward.wgsl) that encodeAttentionBackward takes, where the device has
// f16 16x16x16 subgroup matrices (GpuInfo.mmaF16) and the head dim is a multiple of 16 (the
// backward: of 32; every Llama's is 64 or 128), in f16 storage (inference) or f32 (training), whose
// operands they round to f16. Same tensors, shapes and masks as the SIMT kernels; this file
// generates each head dim's unrolled products.
import type { AttentionShape } from './attention.ts';
import type { GpuInfo } from './gpu.ts';
import type { DType } from './tensor.ts';
import { grid, type Kernels } from './kernels.ts';
import template from '../../shaders/attention-mma.wgsl?raw';
import backwardTemplate from '../../shaders/attention-mma-backward.wgsl?raw';

/** Query rows per workgroup (the shader's BR). */
export const ATTENTION_MMA_ROWS = 64;

/** Whether the tensor-core attention takes tensors of this type and head dim on this device. */
export function attentionMmaApplies(info: GpuInfo, dtype: DType, headDim: number): boolean {
  return info.mmaF16 && info.subgroups && (dtype === 'f16' || dtype === 'f32') && headDim % 16 === 0 && headDim <= 128;
}

/** The shape as attention.ts has checked it; skv = the keys read (those in use at the front of a KV cache). */
export type AttentionMmaParams = Required<AttentionShape>;

/** The uniform both shaders declare (COMMON_WGSL). */
function uniforms(s: AttentionMmaParams, useSegments: boolean) {
  return {
    rows: s.batch * s.heads * s.tq,
    tq: s.tq,
    skv: s.skv,
    heads: s.heads,
    kv_heads: s.kvHeads,
    causal_offset: s.causalOffset,
    window: s.window,
    use_segments: useSegments ? 1 : 0,
    scale_log2: s.scale * Math.LOG2E,
    scale: s.scale,
  };
}

/** Records the forward: bindings q, k, v, segment ids (or a stand-in), o, lse. */
export function encodeAttentionMma(
  kernels: Kernels,
  pass: GPUComputePassEncoder,
  buffers: { q: GPUBuffer; k: GPUBuffer; v: GPUBuffer; seg: GPUBuffer; o: GPUBuffer; lse: GPUBuffer },
  s: AttentionMmaParams,
  useSegments: boolean,
  /** Storage type of o (and of q, k, v unless `qkv`). */
  dtype: DType,
  /** lse holds this product's logsumexp already (AttentionTensors.lseKnown): one pass over the keys. */
  lseKnown = false,
  /** Storage type of q, k and v: dtype, or f16 beside an f32 o. */
  qkv: DType = dtype,
): void {
  // The storage types are S and Q (T, the spec's dtype, is unused); sources are generated once per head dim and types.
  const name = `attention-mma(D=${s.headDim},${typeName(dtype, qkv)})`;
  const kernel = kernels.get({ name, source: attentionMmaSource(s.headDim, dtype, qkv), dtype: 'f32', constants: { LSE_KNOWN: lseKnown } });
  const { q, k, v, seg, o, lse } = buffers;
  kernels.dispatch(pass, kernel, [q, k, v, seg, o, lse], uniforms(s, useSegments), [s.heads, Math.ceil(s.tq / ATTENTION_MMA_ROWS), s.batch]);
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** Matrix loads and stores, spelled once. */
const left = (buf: string, offset: number, stride: string) => `subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&${buf}, ${offset}u, ${stride})`;
const right = (buf: string, offset: number, stride: string, layout: 'row_major' | 'col_major') =>
  `subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, ${layout}>(&${buf}, ${offset}u, ${stride})`;
const result = (buf: string, offset: number, stride: string) => `subgroupMatrixLoad<subgroup_matrix_result<f32, 16, 16>, row_major>(&${buf}, ${offset}u, ${stride})`;
const store = (buf: string, offset: number, m: string, stride: string) => `subgroupMatrixStore<row_major>(&${buf}, ${offset}u, ${m}, ${stride});`;
const mma = (acc: string, l: string, r: string) => `${acc} = subgroupMatrixMultiplyAccumulate(${l}, ${r}, ${acc});`;

/**
 * The uniform of both shaders, and a query row's keys [lo, hi) (empty past tq and for padding) and
 * segment id, as the SIMT forward finds them: causal, the window, and for packed rows the first key
 * of its segment (scanning from the window's start: exact for any layout of segment ids); a key's
 * segment id. Both tensor-core shaders use them.
 */
const COMMON_WGSL = `
struct Params {
  rows: u32, // batch · heads · tq
  tq: u32,
  skv: u32,
  heads: u32,
  kv_heads: u32,
  causal_offset: u32,
  window: u32,
  use_segments: u32,
  scale_log2: f32, // scale · log2(e)
  scale: f32,
}

struct Row {
  lo: u32,
  hi: u32,
  sg: u32,
}

fn query_row(b: u32, i: u32) -> Row {
  var row = Row(0u, 0u, 0u);
  if (i < p.tq) {
    let pos = p.causal_offset + i;
    row.sg = 1u;
    if (p.use_segments != 0u) { row.sg = seg[b * p.skv + pos]; }
    if (row.sg != 0u) {
      row.hi = pos + 1u;
      if (p.window != 0u && row.hi > p.window) { row.lo = row.hi - p.window; }
      if (p.use_segments != 0u) {
        var j = row.lo;
        while (j < pos && seg[b * p.skv + j] != row.sg) { j++; }
        row.lo = j;
      }
    }
  }
  return row;
}

/** The segment id of key j: 0 past skv, 1 for every key without segments. */
fn key_segment(b: u32, j: u32) -> u32 {
  var x = 0u;
  if (j < p.skv) {
    x = 1u;
    if (p.use_segments != 0u) { x = seg[b * p.skv + j]; }
  }
  return x;
}
`;

/**
 * Whether training's f32 arena may keep q, k and v in f16 for the tensor-core attention (forward and
 * backward take f16 q, k, v beside an f32 o and f32 gradients): the values its tiles round them to
 * anyway, in half the bytes (activations.ts qkvDtype).
 */
export function attentionMmaTakesF16Qkv(info: GpuInfo, headDim: number): boolean {
  return attentionMmaBackwardApplies(info, 'f32', headDim);
}

/** Whether attention takes q, k, v of type qkv beside o (and dO, the gradients) of type dtype: one type, or f16 beside f32 where attentionMmaTakesF16Qkv. */
export function attentionMmaTakesTypes(info: GpuInfo, dtype: DType, qkv: DType, headDim: number): boolean {
  return qkv === dtype || (qkv === 'f16' && dtype === 'f32' && attentionMmaTakesF16Qkv(info, headDim));
}

/** The storage types a shader takes: S (o, dO and the gradients) and Q (q, k, v: S, or f16 beside an f32 S). */
function checkTypes(dtype: DType, qkv: DType): void {
  if (dtype !== 'f16' && dtype !== 'f32') throw new Error(`attention mma: storage type ${dtype} is not f16 or f32`);
  if (qkv !== dtype && !(qkv === 'f16' && dtype === 'f32')) throw new Error(`attention mma: q, k, v in ${qkv} beside ${dtype} (they take ${dtype}, or f16 beside f32)`);
}

/** A kernel's cache name: the storage type, and q/k/v's where it differs. */
function typeName(dtype: DType, qkv: DType): string {
  return qkv === dtype ? `S=${dtype}` : `S=${dtype},Q=${qkv}`;
}

/** The directives and constants both shaders start with. */
function header(D: number, dtype: DType, qkv: DType, what: string): string {
  checkTypes(dtype, qkv);
  return [
    'enable f16;',
    'enable subgroups;',
    'enable chromium_experimental_subgroup_matrix;',
    // Offsets come from the invocation index, uniform within each 32-wide subgroup (mmaF16 checks the width).
    'diagnostic(off, chromium.subgroup_matrix_uniformity);',
    `// ${what}`,
    `const D = ${D}u;`,
    `const SK = ${D + 8}u; // row stride of a tile of whole rows (f16)`,
    `alias S = ${dtype};`,
    `alias Q = ${qkv};`,
    dtype === 'f16'
      ? 'fn to_f16(x: vec4<f16>) -> vec4<f16> { return x; }'
      : "// Finite f32 beyond f16's range becomes its largest value, not infinity (never reached by activations).\nfn to_f16(x: vec4f) -> vec4<f16> { return vec4<f16>(clamp(x, vec4f(-65504.0), vec4f(65504.0))); }",
    qkv === 'f16' ? 'fn qkv_f16(x: vec4<f16>) -> vec4<f16> { return x; }' : 'fn qkv_f16(x: vec4f) -> vec4<f16> { return to_f16(x); }',
    '',
  ].join('\n');
}

const sources = new Map<string, string>();

/** The forward's whole shader for a head dim (a multiple of 16 up to 128) and storage types (f16 or f32; q, k, v's: the same, or f16 beside f32). */
export function attentionMmaSource(headDim: number, dtype: DType, qkv: DType = dtype): string {
  const key = `${headDim},${dtype},${qkv}`;
  let src = sources.get(key);
  if (!src) sources.set(key, (src = generateForward(headDim, dtype, qkv)));
  return src;
}

function generateForward(D: number, dtype: DType, qkv: DType): string {
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
  // o scaled by each row's f in place: the same groups through the stage, and back into the result matrices.
  const oRescale = range(Math.ceil(ds / 4)).flatMap((g) => {
    const blocks = range(Math.min(4, ds - 4 * g)).map((jj) => 4 * g + jj);
    return [
      ...(g > 0 ? ['workgroupBarrier(); // the last group is loaded back'] : []),
      ...blocks.map((d, jj) => store('stage[sg]', 16 * jj, `acc${d}`, 'SS')),
      'workgroupBarrier();',
      `for (var e = 0u; e < ${8 * blocks.length}u; e++) { stage[sg][rl * SS + 2u * e + hb] *= f; }`,
      'workgroupBarrier();',
      ...blocks.map((d, jj) => `acc${d} = ${result('stage[sg]', 16 * jj, 'SS')};`),
    ];
  });
  const body = template
    .replace('//{{Q_FETCH}}', 'for (var s = 0u; s < SH; s++) { store_tile(tid, s, fetch_q(tid, s, q0, b, h)); }')
    .replace('//{{Q_LOAD}}', lines(range(ds).map((d) => `let qm${d} = ${left('tile[sg]', 16 * d, 'SK')};`), '  '))
    .replace('//{{KV_DECL}}', lines(range(shares).map((s) => `var x${s}: vec4<Q>;`), '  '))
    .replaceAll('//{{K_FETCH_FIRST}}', lines(fetchKv(false, 'wr.x'), '    '))
    .replaceAll('//{{K_FETCH_NEXT}}', lines(fetchKv(false, 'j0 + BC'), '      '))
    .replace('//{{V_FETCH}}', lines(fetchKv(true, 'j0'), '    '))
    .replaceAll('//{{KV_STORE}}', lines(range(shares).map((s) => `store_tile(tid, ${s}u, x${s});`), '    '))
    .replaceAll('//{{S_PRODUCT}}', lines(sProduct, '    '))
    .replace('//{{O_DECL}}', lines(range(ds).map((d) => `var acc${d} = subgroup_matrix_result<f32, 16, 16>();`), '  '))
    .replace('//{{PV_PRODUCT}}', lines(pvProduct, '    '))
    .replace('//{{O_RESCALE}}', lines(oRescale, '      '))
    .replace('//{{O_STORE}}', lines(oStore, '  '));
  if (body.includes('//{{')) throw new Error('attention mma: a part of the template was left unfilled');
  return `${header(D, dtype, qkv, 'attention forward')}const SH = ${shares}u; // vec4 shares per invocation of a 64-row tile\n${COMMON_WGSL}${body}`;
}

/** Whether the tensor-core backward takes this storage type and head dim (a multiple of 32: dkv's subgroups split the columns in halves of 16-wide blocks). */
export function attentionMmaBackwardApplies(info: GpuInfo, dtype: DType, headDim: number): boolean {
  return attentionMmaApplies(info, dtype, headDim) && headDim % 32 === 0;
}

/** Floats per row of the backward's stats scratch: (lse · log2 e, D) pairs for all rows, then each row's max |dO|. */
export const ATTENTION_STATS_PER_ROW = 3;

/**
 * Records the backward on the tensor cores: delta (stats), then dq and dkv. The shape as
 * attention-backward.ts has checked it; `stats` holds ATTENTION_STATS_PER_ROW floats a row.
 */
export function encodeAttentionBackwardMma(
  kernels: Kernels,
  pass: GPUComputePassEncoder,
  b: { q: GPUBuffer; k: GPUBuffer; v: GPUBuffer; seg: GPUBuffer; o: GPUBuffer; lse: GPUBuffer; dout: GPUBuffer; dq: GPUBuffer; dk: GPUBuffer; dv: GPUBuffer; stats: GPUBuffer },
  s: AttentionMmaParams,
  useSegments: boolean,
  /** Storage type of o, dO and the gradients (and of q, k, v unless `qkv`). */
  dtype: DType,
  /** Storage type of q, k and v: dtype, or f16 beside f32. */
  qkv: DType = dtype,
): void {
  const params = uniforms(s, useSegments);
  const rows = params.rows;
  const source = attentionMmaBackwardSource(s.headDim, dtype, qkv);
  const get = (entryPoint: string) => kernels.get({ name: `attention-mma-backward(D=${s.headDim},${typeName(dtype, qkv)})`, source, dtype: 'f32', entryPoint });
  kernels.dispatchAt(pass, get('delta'), [[4, b.dout], [5, b.stats], [9, b.o], [10, b.lse]], params, grid(kernels, Math.ceil(rows / 64)));
  const common: [number, GPUBuffer][] = [[0, b.q], [1, b.k], [2, b.v], [3, b.seg], [4, b.dout], [5, b.stats]];
  // dkv first: its workgroups are the longest (a key block walks the queries of a whole GQA group).
  kernels.dispatchAt(pass, get('dkv_main'), [...common, [7, b.dk], [8, b.dv]], params, [s.kvHeads, Math.ceil(s.skv / 64), s.batch]);
  kernels.dispatchAt(pass, get('dq_main'), [...common, [6, b.dq]], params, [s.heads, Math.ceil(s.tq / 64), s.batch]);
}

/** The backward's whole shader (delta, dq, dkv) for a head dim (a multiple of 32 up to 128) and storage type. */
export function attentionMmaBackwardSource(headDim: number, dtype: DType, qkv: DType = dtype): string {
  const key = `backward,${headDim},${dtype},${qkv}`;
  let src = sources.get(key);
  if (!src) sources.set(key, (src = generateBackward(headDim, dtype, qkv)));
  return src;
}

function generateBackward(D: number, dtype: DType, qkv: DType): string {
  if (D % 32 !== 0 || D > 128) throw new Error(`attention mma backward: head dim ${D} is not a multiple of 32 up to 128`);
  const ds = D / 16;
  const half = ds / 2; // 16-wide blocks in half a row
  const lines = (xs: string[], indent: string) => xs.join(`\n${indent}`);
  // dq: shares of a 32-key tile per invocation (of 128), of a 32-query tile per invocation of dkv (of 256).
  const dqShares = D / 16;
  const dkvShares = D / 32;
  const dqFetch = (j0: string) => range(dqShares).flatMap((s) => [`xk${s} = dq_fetch_kv(false, tid, ${s}u, ${j0}, b, kvh);`, `xv${s} = dq_fetch_kv(true, tid, ${s}u, ${j0}, b, kvh);`]);
  const dqS = [
    '{',
    ...range(2).flatMap((jb) => [`  var s${jb} = subgroup_matrix_result<f32, 16, 16>();`, `  var dp${jb} = subgroup_matrix_result<f32, 16, 16>();`]),
    ...range(ds).flatMap((d) =>
      range(2).flatMap((jb) => [
        `  ${mma(`s${jb}`, `qm${d}`, right(`kvt[${jb}]`, 16 * d, 'SK', 'col_major'))}`,
        `  ${mma(`dp${jb}`, `om${d}`, right(`kvt[${2 + jb}]`, 16 * d, 'SK', 'col_major'))}`,
      ]),
    ),
    ...range(2).flatMap((jb) => [`  ${store('dst[sg]', 16 * jb, `s${jb}`, 'SQ')}`, `  ${store('dst[sg]', 16 * 40 + 16 * jb, `dp${jb}`, 'SQ')}`]),
    '}',
  ];
  const dqProduct = [
    '{',
    ...range(2).map((jb) => `  let dsm${jb} = ${left('dsw[sg]', 16 * jb, 'SQ')};`),
    ...range(2).flatMap((jb) => range(ds).map((d) => `  ${mma(`dqa${d}`, `dsm${jb}`, right(`kvt[${jb}]`, 16 * d, 'SK', 'row_major'))}`)),
    '}',
  ];
  const dqOut = range(half).flatMap((g) => [
    'workgroupBarrier();',
    store('dst[sg]', 0, `dqa${2 * g}`, 'SQ'),
    store('dst[sg]', 16, `dqa${2 * g + 1}`, 'SQ'),
    'workgroupBarrier();',
    'if (i < p.tq) {',
    `  let base = q_at(b, i, h) * 4u + ${32 * g}u;`,
    '  for (var e = 0u; e < 16u; e++) {',
    '    let c = 2u * e + hb;',
    '    dq[base + c] = S(dst[sg][rl * SQ + c] * p.scale * gs.y);',
    '  }',
    '}',
  ]);
  // dkv: the q/dO tile's block of (tensor, row block, column half).
  const blkAt = (tensor: number, rb: string, ch: number) => `blk[${tensor * 4 + ch} + ${rb} * 2u]`;
  const dkvFetch = range(dkvShares).flatMap((s) => [`yq${s} = dkv_fetch_q(tid, ${s}u, i0, b, h);`, `yo${s} = dkv_fetch_do(tid, ${s}u, i0, b, h);`]);
  const dkvS = [
    '{',
    '  var st = subgroup_matrix_result<f32, 16, 16>();',
    '  var dpt = subgroup_matrix_result<f32, 16, 16>();',
    ...range(ds).flatMap((d) => [
      `  ${mma('st', `km${d}`, right(blkAt(0, 'hd', Math.floor(d / half)), 16 * (d % half), 'SKH', 'col_major'))}`,
      `  ${mma('dpt', `vm${d}`, right(blkAt(1, 'hd', Math.floor(d / half)), 16 * (d % half), 'SKH', 'col_major'))}`,
    ]),
    `  ${store('kst[sg]', 0, 'st', '16u')}`,
    `  ${store('kst[sg]', 256, 'dpt', '16u')}`,
    '}',
  ];
  const dkvProduct = [
    '{',
    ...range(2).flatMap((qb) => [`  let pm${qb} = ${left('pw[kc]', 16 * qb, 'SQ')};`, `  let dsm${qb} = ${left('dsw_t[kc]', 16 * qb, 'SQ')};`]),
    ...range(2).flatMap((qb) =>
      range(half).flatMap((n) => [
        `  ${mma(`dva${n}`, `pm${qb}`, right(`blk[${4 + 2 * qb} + hd]`, 16 * n, 'SKH', 'row_major'))}`,
        `  ${mma(`dka${n}`, `dsm${qb}`, right(`blk[${2 * qb} + hd]`, 16 * n, 'SKH', 'row_major'))}`,
      ]),
    ),
    '}',
  ];
  const dkvOut = range(half).flatMap((n) => [
    'workgroupBarrier();',
    store('kst[sg]', 0, `dka${n}`, '16u'),
    store('kst[sg]', 256, `dva${n}`, '16u'),
    'workgroupBarrier();',
    'if (j < p.skv) {',
    `  let base = kv_at(b, j, kvh) * 4u + hd * DH + ${16 * n}u;`,
    '  for (var u = 0u; u < 8u; u++) {',
    '    let c = 8u * h2 + u;',
    '    dk[base + c] = S(kst[sg][r * 16u + c] * p.scale * gs.y);',
    '    dv[base + c] = S(kst[sg][256u + r * 16u + c] * (gs.y / P_SCALE));',
    '  }',
    '}',
  ]);
  const body = backwardTemplate
    .replace('//{{DQ_Q_LOAD}}', lines(range(ds).map((d) => `let qm${d} = ${left('kvt[sg]', 16 * d, 'SK')};`), '  '))
    .replace('//{{DQ_O_LOAD}}', lines(range(ds).map((d) => `let om${d} = ${left('kvt[sg]', 16 * d, 'SK')};`), '  '))
    .replace(
      '//{{DQ_DECL}}',
      lines([...range(ds).map((d) => `var dqa${d} = subgroup_matrix_result<f32, 16, 16>();`), ...range(dqShares).map((s) => `var xk${s}: vec4<Q>;\n  var xv${s}: vec4<Q>;`)], '  '),
    )
    .replace('//{{DQ_FETCH_FIRST}}', lines(dqFetch('wr.x'), '    '))
    .replace('//{{DQ_FETCH_NEXT}}', lines(dqFetch('j0 + 32u'), '      '))
    .replace('//{{DQ_STORE}}', lines(range(dqShares).flatMap((s) => [`dq_store_kv(false, tid, ${s}u, xk${s});`, `dq_store_kv(true, tid, ${s}u, xv${s});`]), '    '))
    .replace('//{{DQ_S_PRODUCT}}', lines(dqS, '    '))
    .replace('//{{DQ_PRODUCT}}', lines(dqProduct, '    '))
    .replace('//{{DQ_OUT}}', lines(dqOut, '  '))
    .replace('//{{DKV_K_LOAD}}', lines(range(ds).map((d) => `let km${d} = ${left(`blk[${Math.floor(d / half)} + kc * 2u]`, 16 * (d % half), 'SKH')};`), '  '))
    .replace('//{{DKV_V_LOAD}}', lines(range(ds).map((d) => `let vm${d} = ${left(`blk[${Math.floor(d / half)} + kc * 2u]`, 16 * (d % half), 'SKH')};`), '  '))
    .replace(
      '//{{DKV_DECL}}',
      lines(
        [...range(half).map((n) => `var dka${n} = subgroup_matrix_result<f32, 16, 16>();\n  var dva${n} = subgroup_matrix_result<f32, 16, 16>();`), ...range(dkvShares).map((s) => `var yq${s}: vec4<Q>;\n  var yo${s}: vec4<S>;`)],
        '  ',
      ),
    )
    .replaceAll('//{{DKV_FETCH}}', lines(dkvFetch, '      '))
    .replace('//{{DKV_STORE}}', lines(range(dkvShares).flatMap((s) => [`dkv_store_q(tid, ${s}u, yq${s});`, `dkv_store_do(tid, ${s}u, yo${s}, gs.x);`]), '    '))
    .replace('//{{DKV_S_PRODUCT}}', lines(dkvS, '    '))
    .replace('//{{DKV_PRODUCT}}', lines(dkvProduct, '    '))
    .replace('//{{DKV_OUT}}', lines(dkvOut, '  '));
  if (body.includes('//{{')) throw new Error('attention mma backward: a part of the template was left unfilled');
  const consts = [
    `const SH = ${D / 8}u; // vec4 shares per invocation of dq's 64-row tiles`,
    `const SHK = ${D / 16}u; // of dkv's 64 keys`,
    `const SKH = ${D / 2 + 8}u; // row stride of dkv's half-row blocks (f16)`,
    '',
  ].join('\n');
  return `${header(D, dtype, qkv, 'attention backward')}${consts}${COMMON_WGSL}${body}`;
}
