// NF4 GEMV (shaders/nf4-gemv.wgsl): y[M, N] = x[M, K] · dequant(W)ᵀ (+ bias or residual) (+ y)
// (+ a LoRA's up-projection) for decode's few rows (M <= NF4_GEMV_MAX_ROWS), W the NF4 weight
// [N, K], x optionally through a prologue (RMSNorm or SwiGLU): the extras save decode the
// dispatches of the kernels around each projection. nf4-matmul.ts sends its small forwards here;
// the reference is the same (reference/nf4-matmul.ts).
// Also the workgroup sum both GEMVs end with (ROW_SUM_WGSL; lmhead.ts's one-row logits use it).
import { expectShape, numel, type DType, type Tensor } from './tensor.ts';
import { checkBindingSizes, grid, withResidualType, type Kernel, type Kernels } from './kernels.ts';
import { NF4_WGSL, type Nf4GpuWeight } from './nf4.ts';
import source from '../../shaders/nf4-gemv.wgsl?raw';

/** Rows (tokens) up to which the forward runs the GEMV kernel (decode) instead of the tiled one. */
export const NF4_GEMV_MAX_ROWS = 8;
/**
 * W rows per workgroup for x [m, k] and W [n, k]: 4 (the vec4 components of the shader's
 * accumulators), or 8 (gemv8: one row of x, K % 32 == 0, two quads) where there are rows enough to
 * keep 1024 and more workgroups: decode's gate/up (bench/decode-notes.md, session 8).
 */
export function gemvRowsPerWorkgroup(m: number, n: number, k: number): 4 | 8 {
  return m === 1 && k % 32 === 0 && n >= 8192 ? 8 : 4;
}

/** row_sum_with's result: the sums of v and of w. */
const ROW_SUM5 = `
struct RowSum5 { v: vec4<f32>, w: f32 }
`;

/**
 * `row_sum(lanes, count, v)`: Σ of v over the `count` invocations of a 1-D workgroup, returned to
 * every invocation; called in uniform control flow, count a multiple of 8 and at most 256
 * (`row_sum_with(lanes, count, v, w)` sums a scalar w alongside, in the same barriers). The
 * entry point takes `lanes: Lanes` (its builtins). Two variants with the same interface:
 *   subgroups  subgroupAdd, then one partial per subgroup in workgroup memory (2 barriers). The
 *              partial's slot is local_invocation_index / subgroup_size: it takes a 1-D
 *              workgroup's subgroups to be consecutive runs of invocations, as every driver lays
 *              them out (WGSL leaves it open; the tests and the bench check the sums), and count a
 *              multiple of the subgroup size (sizes are powers of two up to 128).
 *   workgroup  all partials to workgroup memory, sums of 8 in place, then of count / 8 (3 barriers).
 */
export const ROW_SUM_WGSL = {
  subgroups: `enable subgroups;
struct Lanes {
  @builtin(local_invocation_index) index: u32,
  @builtin(subgroup_size) sg_size: u32,
  @builtin(subgroup_invocation_id) sg_lane: u32,
}

var<workgroup> row_sum_part: array<vec4<f32>, 256>;
var<workgroup> row_sum_extra: array<f32, 256>;

fn row_sum(lanes: Lanes, count: u32, v: vec4<f32>) -> vec4<f32> {
  let s = subgroupAdd(v);
  if (lanes.sg_lane == 0u) { row_sum_part[lanes.index / lanes.sg_size] = s; }
  workgroupBarrier();
  var t = row_sum_part[0];
  for (var g = 1u; g < count / lanes.sg_size; g++) { t += row_sum_part[g]; }
  workgroupBarrier(); // the next call writes the partials again
  return t;
}

fn row_sum_with(lanes: Lanes, count: u32, v: vec4<f32>, w: f32) -> RowSum5 {
  let s = subgroupAdd(v);
  let sw = subgroupAdd(w);
  if (lanes.sg_lane == 0u) {
    row_sum_part[lanes.index / lanes.sg_size] = s;
    row_sum_extra[lanes.index / lanes.sg_size] = sw;
  }
  workgroupBarrier();
  var t = RowSum5(row_sum_part[0], row_sum_extra[0]);
  for (var g = 1u; g < count / lanes.sg_size; g++) {
    t.v += row_sum_part[g];
    t.w += row_sum_extra[g];
  }
  workgroupBarrier();
  return t;
}
` + ROW_SUM5,
  workgroup: `struct Lanes {
  @builtin(local_invocation_index) index: u32,
}

var<workgroup> row_sum_part: array<vec4<f32>, 256>;

fn row_sum_with(lanes: Lanes, count: u32, v: vec4<f32>, w: f32) -> RowSum5 {
  return RowSum5(row_sum(lanes, count, v), row_sum(lanes, count, vec4(w, 0.0, 0.0, 0.0)).x);
}

fn row_sum(lanes: Lanes, count: u32, v: vec4<f32>) -> vec4<f32> {
  row_sum_part[lanes.index] = v;
  workgroupBarrier();
  // Invocation i < count / 8 folds partials 8i .. 8i + 7 into 8i (each reads only its own eight).
  if (lanes.index < count / 8u) {
    let b = lanes.index * 8u;
    var s = row_sum_part[b];
    for (var i = 1u; i < 8u; i++) { s += row_sum_part[b + i]; }
    row_sum_part[b] = s;
  }
  workgroupBarrier();
  var t = row_sum_part[0];
  for (var g = 1u; g < count / 8u; g++) { t += row_sum_part[g * 8u]; }
  workgroupBarrier(); // the next call writes the partials again
  return t;
}
` + ROW_SUM5,
};

/** Whether `row_sum` takes the subgroup variant: `requested` if given (false forces workgroup memory), else the device's. */
export function rowSumSubgroups(kernels: Kernels, requested?: boolean): boolean {
  const has = kernels.gpu.info.subgroups;
  if (requested && !has) throw new Error('gemv: this device has no subgroups');
  return requested ?? has;
}

/** What a decode GEMV multiplies its weight by in place of x (nf4-gemv.wgsl and lora-gemv.wgsl PROLOGUE). */
export type GemvPrologue = { kind: 'rmsnorm'; weight: Tensor; eps: number } | { kind: 'swiglu'; up: Tensor };

export interface Nf4GemvOptions {
  /** f32 [N], added to every row. */
  bias?: Tensor;
  /** y += result instead of y = result. */
  accumulate?: boolean;
  /** Sum with subgroupAdd (default: where the device has `subgroups`); false forces workgroup memory. */
  subgroups?: boolean;
  /** Invocations per workgroup (default 128). */
  workgroupSize?: 128 | 256;
  /** W rows per workgroup (default gemvRowsPerWorkgroup's; 8 takes one row of x and K % 32 == 0). */
  rowsPerWorkgroup?: 4 | 8;
  /** f32, the shape of y: added to every output (decode's residual stream: y = residual + x · Wᵀ). Not with a bias. */
  residual?: Tensor;
  /**
   * What multiplies W instead of x itself (K % 32 == 0), folding decode's neighbouring kernel in:
   * rmsnorm: x · weight / rms(x) per row (x the f32 residual stream or the storage type, weight [K]);
   * swiglu: silu(x) · up (x the gate, up of x's shape and dtype).
   */
  prologue?: GemvPrologue;
  /**
   * A LoRA's up-projection: y += scale · u · Bᵀ, u = x · Aᵀ [..., r] and B [N, r], both f32. Under
   * an rmsnorm prologue u is (x · weight) · Aᵀ without the 1 / rms (lora.ts encodeLoraU's): the GEMV
   * multiplies its whole sum, this term included, by 1 / rms. With `parts` > 1, u comes as parts
   * that the GEMV sums, [parts, M, r] (attention.ts's per-head shares of o_proj's u).
   */
  lora?: { u: Tensor; b: Tensor; scale: number; parts?: number };
}

/**
 * Records y = x · dequant(W)ᵀ (+ bias or residual) (+ y) (+ LoRA) into `pass`: x [..., K] in the
 * storage type (f32 too under an rmsnorm prologue), at most NF4_GEMV_MAX_ROWS rows; y [..., N] in
 * the storage type or f32. f32 accumulation.
 */
export function encodeNf4Gemv(
  kernels: Kernels,
  pass: GPUComputePassEncoder,
  x: Tensor,
  w: Nf4GpuWeight,
  y: Tensor,
  opts: Nf4GemvOptions = {},
): void {
  if (w.shape.length !== 2) throw new Error(`nf4 gemv: the weight has shape [${w.shape}], expected [out, in]`);
  if (w.numel >= 2 ** 32) throw new Error(`nf4 gemv: a weight of ${w.numel} elements needs 64-bit indices`);
  const [n, k] = w.shape;
  if (x.shape[x.shape.length - 1] !== k) throw new Error(`nf4 gemv: x has shape [${x.shape}], expected [..., ${k}]`);
  const m = numel(x.shape) / k;
  if (!(m >= 1 && m <= NF4_GEMV_MAX_ROWS)) throw new Error(`nf4 gemv: the gemv kernel takes at most ${NF4_GEMV_MAX_ROWS} rows, not ${m}`);
  expectShape('nf4 gemv', y, [...x.shape.slice(0, -1), n], 'y');
  if (opts.bias) {
    expectShape('nf4 gemv', opts.bias, [n], 'bias');
    if (opts.bias.dtype !== 'f32') throw new Error(`nf4 gemv: bias must be f32, not ${opts.bias.dtype}`);
  }
  if (opts.residual) {
    expectShape('nf4 gemv', opts.residual, y.shape, 'residual');
    if (opts.residual.dtype !== 'f32') throw new Error(`nf4 gemv: the residual must be f32, not ${opts.residual.dtype}`);
    if (opts.residual.buffer === y.buffer) throw new Error('nf4 gemv: the residual must not be the output (use accumulate)');
    if (opts.bias) throw new Error('nf4 gemv: a bias and a residual together: add the residual apart');
  }
  const pro = opts.prologue;
  if (pro) {
    if (k % 32 !== 0) throw new Error(`nf4 gemv: a prologue needs K % 32 == 0, not K = ${k}`);
    if (pro.kind === 'rmsnorm') {
      expectShape('nf4 gemv', pro.weight, [k], 'norm weight');
      if (!(pro.eps >= 0)) throw new Error(`nf4 gemv: eps must be >= 0, not ${pro.eps}`);
    } else {
      expectShape('nf4 gemv', pro.up, x.shape, 'up');
      if (pro.up.dtype !== x.dtype) throw new Error(`nf4 gemv: up is ${pro.up.dtype} but the gate is ${x.dtype}`);
    }
  }
  const second = pro ? (pro.kind === 'rmsnorm' ? pro.weight : pro.up) : undefined;
  const lora = opts.lora;
  const r = lora ? lora.b.shape[1] : 0;
  if (lora) {
    expectShape('nf4 gemv', lora.b, [n, r], 'LoRA B');
    const parts = lora.parts ?? 1;
    if (!(Number.isInteger(parts) && parts >= 1)) throw new Error(`nf4 gemv: LoRA parts must be a positive integer, not ${parts}`);
    expectShape('nf4 gemv', lora.u, parts > 1 ? [parts, m, r] : [...x.shape.slice(0, -1), r], 'LoRA u');
    if (lora.u.dtype !== 'f32' || lora.b.dtype !== 'f32') throw new Error(`nf4 gemv: LoRA u and B must be f32, not ${lora.u.dtype}/${lora.b.dtype}`);
    if (!Number.isFinite(lora.scale)) throw new Error(`nf4 gemv: LoRA scale ${lora.scale} is not finite`);
  }
  if (y.buffer === x.buffer) throw new Error('nf4 gemv: the output must not be the input');
  checkBindingSizes(kernels, 'nf4 gemv', [
    ['input', x.buffer],
    ['output', y.buffer],
    ['weight words', w.words],
  ]);
  const bsShift = Math.log2(w.blocksize);
  if (!Number.isInteger(bsShift) || w.blocksize < 32) throw new Error(`nf4 gemv: blocksize ${w.blocksize} is not a power of two >= 32`);

  const subgroups = rowSumSubgroups(kernels, opts.subgroups);
  const wg = opts.workgroupSize ?? 128;
  // The 16-byte loads need rows that start on a 16-byte word group: K % 32 == 0 (real models).
  const rows = opts.rowsPerWorkgroup ?? gemvRowsPerWorkgroup(m, n, k);
  if (rows === 8 && (m !== 1 || k % 32 !== 0)) throw new Error(`nf4 gemv: 8 W rows a workgroup take one row of x and K % 32 == 0, not ${m} rows and K ${k}`);
  const entryPoint = k % 32 === 0 ? (rows === 8 ? 'gemv8' : 'gemv') : 'gemv_any';
  // The shader's T: the storage type (x's, or the norm weight's when x is the f32 residual stream).
  const storage = pro?.kind === 'rmsnorm' ? pro.weight.dtype : x.dtype;
  const mode = !pro ? 0 : pro.kind === 'rmsnorm' ? 1 : 2;
  const kernel = gemvKernel(kernels, subgroups, storage, y.dtype, entryPoint, m === 1, wg, x.dtype === 'f16', second?.dtype === 'f16', mode, lora ? (lora.parts ?? 1) : 0);
  const addend = opts.residual ?? opts.bias;
  const params = {
    m,
    n,
    k,
    bs_shift: bsShift,
    aligned: k % 8 === 0 ? 1 : 0,
    accumulate: opts.accumulate ? 1 : 0,
    addend_stride: opts.residual ? n : 0,
    has_addend: addend ? 1 : 0,
    lora_r: r,
    lora_scale: lora?.scale ?? 0,
    eps: pro?.kind === 'rmsnorm' ? pro.eps : 0,
  };
  // An absent addend, prologue input or LoRA has a (read-only) buffer of the weight in its binding,
  // never read: the words for the prologue's 16-byte view (at least 16 bytes), else the absmax.
  const none = w.absmax;
  const bindings: [number, GPUBuffer][] = [[0, x.buffer], [1, w.words], [2, w.absmax], [3, addend?.buffer ?? none], [4, y.buffer], [6, lora?.u.buffer ?? none], [7, lora?.b.buffer ?? none]];
  // Only `gemv` and `gemv8` have a prologue (binding 5).
  if (entryPoint !== 'gemv_any') bindings.push([5, second?.buffer ?? w.words]);
  kernels.dispatchAt(pass, kernel, bindings, params, grid(kernels, Math.ceil(n / rows)));
}

/** Kernels by everything that picks one: a decode step records hundreds of GEMVs, and building the
 * spec (sources, names, the constants' key) each time doubled the CPU cost of recording one. */
const gemvKernels = new WeakMap<Kernels, Map<string, Kernel>>();

function gemvKernel(
  kernels: Kernels,
  subgroups: boolean,
  storage: DType,
  yType: DType,
  entryPoint: string,
  oneRow: boolean,
  wg: number,
  xHalf: boolean,
  x2Half: boolean,
  prologue: number,
  /** 0: no LoRA; else u's parts. */
  lora: number,
): Kernel {
  let cache = gemvKernels.get(kernels);
  if (!cache) gemvKernels.set(kernels, (cache = new Map()));
  const key = `${subgroups}|${storage}|${yType}|${entryPoint}|${oneRow}|${wg}|${xHalf}|${x2Half}|${prologue}|${lora}`;
  let kernel = cache.get(key);
  if (!kernel) {
    const spec = withResidualType(subgroups ? 'nf4-gemv(subgroups)' : 'nf4-gemv', NF4_WGSL + source + ROW_SUM_WGSL[subgroups ? 'subgroups' : 'workgroup'], storage, yType);
    const constants = { ONE_ROW: oneRow, GEMV_WG: wg, X_HALF: xHalf, X2_HALF: x2Half, PROLOGUE: prologue, LORA: lora > 0, LORA_PARTS: Math.max(1, lora) };
    kernel = kernels.get({ ...spec, dtype: storage, entryPoint, constants });
    cache.set(key, kernel);
  }
  return kernel;
}
