// The LoRA path (shaders/lora.wgsl): y += scale · B (A x) beside a frozen (NF4) linear, with
// PEFT's names and layouts: lora_A [r, in], lora_B [out, r], scaling = lora_alpha / r, or
// lora_alpha / sqrt(r) with use_rslora. A and B are f32 master weights in both numeric modes.
// In training, lora_dropout applies to the LoRA path's input (lora-dropout.ts), with a mask the
// kernels derive from a key instead of reading it. Reference: reference/lora.ts.
// The two products' kernels (down, up) serve the backward too (lora-backward.ts), through
// encodeLoraDown / encodeLoraUp and a module that adds the backward's own kernels.
import { expectShape, createTensor, numel, type DType, type Tensor } from './tensor.ts';
import { grid, submitPass, type Kernel, type Kernels } from './kernels.ts';
import { dropoutParams, type LoraDropoutDraw } from './lora-dropout.ts';
import dropoutSource from '../../shaders/lora-dropout.wgsl?raw';
import loraSource from '../../shaders/lora.wgsl?raw';
import gemvSource from '../../shaders/lora-gemv.wgsl?raw';
import { ROW_SUM_WGSL, rowSumSubgroups, type GemvPrologue } from './nf4-gemv.ts';

/** PEFT's `scaling`: lora_alpha / r, or lora_alpha / sqrt(r) with rsLoRA (use_rslora). */
export function loraScale({ r, alpha, rslora = false }: { r: number; alpha: number; rslora?: boolean }): number {
  if (!(Number.isInteger(r) && r > 0)) throw new Error(`lora: r must be a positive integer, not ${r}`);
  if (!Number.isFinite(alpha)) throw new Error(`lora: lora_alpha must be a finite number, not ${alpha}`);
  return rslora ? alpha / Math.sqrt(r) : alpha / r;
}

export interface LoraWeights {
  /** lora_A [r, K], f32. */
  a: Tensor;
  /** lora_B [N, r], f32. */
  b: Tensor;
  /** loraScale(...). */
  scale: number;
  /**
   * The dropout draw of the forward being recorded: set by the training step for each
   * micro-batch and cleared after it; absent or null (eval, chat): no dropout.
   */
  dropout?: LoraDropoutDraw | null;
}

/** Whether `l` drops anything in the forward being recorded (the kernels' DROPOUT override). */
export function hasDropout(l: LoraWeights): boolean {
  return !!l.dropout && l.dropout.p > 0;
}

/**
 * Records u = x · Aᵀ (as encodeLoraU) and then y += scale · u · Bᵀ (two dispatches). x [..., K] in the storage
 * type; u [..., r] f32 (written; the backward pass reads it); y [..., N] in the storage type or
 * f32, updated in place (it holds the base layer's output). f32 accumulation.
 */
export function encodeLora(kernels: Kernels, pass: GPUComputePassEncoder, x: Tensor, lora: LoraWeights, u: Tensor, y: Tensor): void {
  const s = checkLora(x, lora, u, y);
  encodeLoraU(kernels, pass, x, lora, u);
  const mod = loraModule('lora', '', x.dtype, x.dtype, y.dtype);
  encodeLoraUp(kernels, pass, mod, { f: u.buffer, w: lora.b.buffer, wj: 1, wc: s.r, y: y.buffer, m: s.m, c: s.n, r: s.r, scale: lora.scale, accumulate: true });
}

/**
 * Records u = x · Aᵀ alone (dropout included): encodeLora's first half, for a GEMV whose epilogue
 * adds scale · u · Bᵀ (nf4-gemv.ts `lora`). Up to LORA_GEMV_MAX_ROWS rows without dropout
 * (decode) take shaders/lora-gemv.wgsl, one workgroup per row of A; with a `prologue` (as the NF4
 * GEMV's: x the residual stream and the norm's weight, or the gate and up) A multiplies that; the
 * rmsnorm's without its 1 / rms, which the NF4 GEMV that adds u applies to its whole sum.
 */
export function encodeLoraU(kernels: Kernels, pass: GPUComputePassEncoder, x: Tensor, lora: LoraWeights, u: Tensor, prologue?: GemvPrologue): void {
  encodeLoraUs(kernels, pass, x, [{ lora, u }], prologue);
}

/** An adapter and the u it writes. */
export interface LoraDown {
  lora: LoraWeights;
  u: Tensor;
}

/**
 * encodeLoraU for adapters that multiply the same x (decode's q/k/v, gate/up): one lora-gemv
 * dispatch for up to LORA_GEMV_GROUP of them where each takes that kernel and they share r (its
 * workgroups are rows of A), else one dispatch each. With `parts` > 1 (one adapter, the GEMV
 * path) u is written as that many partial sums over K, [parts, M, r] (loraGemvParts; the NF4 GEMV
 * sums them, nf4-gemv.ts `lora.parts`).
 */
export function encodeLoraUs(kernels: Kernels, pass: GPUComputePassEncoder, x: Tensor, downs: readonly LoraDown[], prologue?: GemvPrologue, parts = 1): void {
  if (downs.length === 0) return;
  const k = x.shape[x.shape.length - 1];
  const m = numel(x.shape) / k;
  for (const { lora, u } of downs) {
    const r = lora.a.shape[0];
    if (lora.a.dtype !== 'f32') throw new Error(`lora: A must be f32 (master weights), not ${lora.a.dtype}`);
    expectShape('lora', lora.a, [r, k], 'A');
    expectShape('lora', u, parts > 1 ? [parts, m, r] : [...x.shape.slice(0, -1), r], 'u');
    if (u.dtype !== 'f32') throw new Error(`lora: u must be f32, not ${u.dtype}`);
  }
  const gemv = m <= LORA_GEMV_MAX_ROWS && !downs.some((d) => hasDropout(d.lora));
  if (prologue && !(gemv && k % 4 === 0)) throw new Error(`lora: a prologue takes at most ${LORA_GEMV_MAX_ROWS} rows, no dropout and K % 4 == 0`);
  if (parts > 1 && !(gemv && k % 4 === 0 && downs.length === 1 && Number.isInteger(parts))) {
    throw new Error(`lora: u in ${parts} parts takes one adapter, at most ${LORA_GEMV_MAX_ROWS} rows, no dropout and K % 4 == 0`);
  }
  const r = downs[0].lora.a.shape[0];
  if (gemv && k % 4 === 0 && downs.length <= LORA_GEMV_GROUP && downs.every((d) => d.lora.a.shape[0] === r)) {
    recordGemv(kernels, pass, x, downs, m, k, prologue, parts);
    return;
  }
  for (const d of downs) {
    if (gemv) recordGemv(kernels, pass, x, [d], m, k, prologue);
    else {
      const mod = loraModule('lora', '', x.dtype, x.dtype, x.dtype);
      encodeLoraDown(kernels, pass, mod, { g: x.buffer, w: d.lora.a.buffer, wj: k, wc: 1, out: d.u.buffer, m, c: k, r: d.lora.a.shape[0], scale: 1, dropout: d.lora.dropout });
    }
  }
}

/** Adapters lora-gemv.wgsl's `main` takes in one dispatch. */
export const LORA_GEMV_GROUP = 3;

/**
 * Parts of K for decode's u = x · Aᵀ (encodeLoraUs `parts`): a 256-invocation workgroup takes 4096
 * elements in one trip of loads, so longer rows (down_proj's 14336: four trips and a tail) are cut
 * into parts of at most that, up to 4.
 */
export function loraGemvParts(k: number): number {
  return Math.min(4, Math.ceil(k / 4096));
}

/** u_g = x · A_gᵀ through lora-gemv.wgsl for checked shapes (m <= LORA_GEMV_MAX_ROWS, no dropout; a group: K % 4 == 0, one r). */
function recordGemv(kernels: Kernels, pass: GPUComputePassEncoder, x: Tensor, downs: readonly LoraDown[], m: number, k: number, prologue?: GemvPrologue, parts = 1): void {
  const entryPoint = k % 4 === 0 ? 'main' : 'main_any';
  const second = prologue ? (prologue.kind === 'rmsnorm' ? prologue.weight : prologue.up) : undefined;
  const mode = !prologue ? 0 : prologue.kind === 'rmsnorm' ? 1 : 2;
  const kernel = loraGemvKernel(kernels, rowSumSubgroups(kernels), second?.dtype ?? x.dtype, x.dtype, entryPoint, mode);
  const r = downs[0].lora.a.shape[0];
  const bindings: [number, GPUBuffer][] = [[0, x.buffer], [1, downs[0].lora.a.buffer], [2, downs[0].u.buffer]];
  if (entryPoint === 'main') {
    // Unused bindings take placeholders (never read or written: p.groups says so).
    const a = (g: number): GPUBuffer => downs[g]?.lora.a.buffer ?? kernels.placeholder();
    const u = (g: number): GPUBuffer => downs[g]?.u.buffer ?? kernels.placeholder(g);
    bindings.push([4, second?.buffer ?? kernels.placeholder()], [5, a(1)], [6, a(2)], [7, u(1)], [8, u(2)]);
  }
  kernels.dispatchAt(pass, kernel, bindings, { m, k, r, groups: downs.length, parts }, grid(kernels, r * downs.length * parts));
}

/** lora-gemv kernels by what picks one (decode records one per adapted projection and layer). */
const gemvKernels = new WeakMap<Kernels, Map<string, Kernel>>();

function loraGemvKernel(kernels: Kernels, subgroups: boolean, storage: DType, xType: DType, entryPoint: string, prologue: number): Kernel {
  let cache = gemvKernels.get(kernels);
  if (!cache) gemvKernels.set(kernels, (cache = new Map()));
  const key = `${subgroups}|${storage}|${xType}|${entryPoint}|${prologue}`;
  let kernel = cache.get(key);
  if (!kernel) {
    const source = `alias X = ${xType};\n${gemvSource}${ROW_SUM_WGSL[subgroups ? 'subgroups' : 'workgroup']}`;
    kernel = kernels.get({ name: `lora-gemv(${subgroups ? 'subgroups,' : ''}X=${xType})`, source, dtype: storage, entryPoint, constants: { PROLOGUE: prologue } });
    cache.set(key, kernel);
  }
  return kernel;
}

/** Rows of x up to which encodeLoraU takes the GEMV kernel. */
export const LORA_GEMV_MAX_ROWS = 8;


/** Allocates u, records encodeLora and submits it: y is updated in place; returns u ([..., r], f32). */
export function lora(kernels: Kernels, x: Tensor, weights: LoraWeights, y: Tensor): Tensor {
  const u = createTensor(kernels.device, [...x.shape.slice(0, -1), weights.a.shape[0]], 'f32', 'lora.u');
  submitPass(kernels, (pass) => encodeLora(kernels, pass, x, weights, u, y));
  return u;
}

function checkLora(x: Tensor, l: LoraWeights, u: Tensor, y: Tensor): { m: number; k: number; n: number; r: number } {
  if (l.a.shape.length !== 2 || l.b.shape.length !== 2) {
    throw new Error(`lora: A [${l.a.shape}] and B [${l.b.shape}] must be [r, in] and [out, r]`);
  }
  const [r, k] = l.a.shape;
  const [n, rb] = l.b.shape;
  if (rb !== r) throw new Error(`lora: B has shape [${l.b.shape}], expected [out, ${r}]`);
  if (l.a.dtype !== 'f32' || l.b.dtype !== 'f32') throw new Error(`lora: A and B must be f32 (master weights), not ${l.a.dtype}/${l.b.dtype}`);
  if (x.shape.length < 1 || x.shape[x.shape.length - 1] !== k) throw new Error(`lora: x has shape [${x.shape}], expected [..., ${k}]`);
  const lead = x.shape.slice(0, -1);
  expectShape('lora', u, [...lead, r], 'u');
  expectShape('lora', y, [...lead, n], 'y');
  if (u.dtype !== 'f32') throw new Error(`lora: u must be f32, not ${u.dtype}`);
  if (y.dtype !== 'f32' && y.dtype !== x.dtype) throw new Error(`lora: y must be f32 or the storage type ${x.dtype}, not ${y.dtype}`);
  if (!Number.isFinite(l.scale)) throw new Error(`lora: scale ${l.scale} is not finite`);
  const distinct = new Set([x.buffer, l.a.buffer, l.b.buffer, u.buffer, y.buffer]);
  if (distinct.size !== 5) throw new Error('lora: x, A, B, u and y must be five buffers');
  return { m: numel(lead), k, n, r };
}

// ---- the kernels of shaders/lora.wgsl, shared with the backward

/** Rows of g per workgroup of `down` (shaders/lora.wgsl DOWN_ROWS). */
const DOWN_ROWS = 8;
/** Columns per workgroup of `up` and `outer` (UP_COLS). */
export const LORA_COLS = 256;
/** Columns j of r per accumulator set: the grid's z (down, outer) or up's loop. */
export const LORA_J_GROUP = 16;
/**
 * Workgroups up's grid aims for: several waves of a large GPU (the H200 has 132 SMs, two of these
 * workgroups each), so that the last, partial wave costs little; blocks of at least 32 rows keep
 * the staging of W (once per workgroup) small beside the rows.
 */
const UP_TARGET_WORKGROUPS = 1024;
const UP_MIN_ROWS = 32;

/** A compiled-once module: its kernel name, WGSL and loader dtype (`T`: f16 where any tensor is). */
export interface LoraModule {
  name: string;
  source: string;
  dtype: DType;
}

const modules = new Map<string, LoraModule>();

/**
 * The module `base` ('lora', or 'lora_backward' with `extra` = its source) with the storage types
 * declared: `G` for g (x or dy), `R` for y (up's output). Built once per combination, so recording
 * a dispatch does not concatenate sources.
 */
export function loraModule(base: string, extra: string, t: DType, g: DType, r: DType): LoraModule {
  const key = `${base}|${t}|${g}|${r}`;
  let mod = modules.get(key);
  if (!mod) {
    mod = { name: `${base}(G=${g},R=${r})`, source: `alias G = ${g};\nalias R = ${r};\n${dropoutSource}\n${loraSource}\n${extra}`, dtype: t };
    modules.set(key, mod);
  }
  return mod;
}

/** Every field of the shader's Params (the uniform keeps what a previous dispatch set otherwise). */
export function loraParams(over: Partial<Record<string, number>> & { m: number; k: number; r: number }): Record<string, number> {
  return {
    w_j: 0,
    w_c: 0,
    rows: 0,
    out_t: 0,
    len: 0,
    parts: 0,
    accumulate: 0,
    scale: 1,
    ...dropoutParams(null),
    ...over,
  } as Record<string, number>;
}

export interface LoraDownArgs {
  /** [m, c] in the module's G. */
  g: GPUBuffer;
  /** W(j, c) = w[j · wj + c · wc], f32. */
  w: GPUBuffer | GPUBufferBinding;
  wj: number;
  wc: number;
  /** [m, r] f32, written. */
  out: GPUBuffer;
  m: number;
  c: number;
  r: number;
  scale: number;
  /** Dropout of g (the forward's x). */
  dropout?: LoraDropoutDraw | null;
}

/**
 * out[m, j] = scale Σ_c g[m, c] · W(j, c) (shaders/lora.wgsl down): 8 rows and all of c per
 * workgroup; 16-byte loads where c % 4 == 0 and W is contiguous along c, scalar ones otherwise.
 */
export function encodeLoraDown(kernels: Kernels, pass: GPUComputePassEncoder, mod: LoraModule, a: LoraDownArgs): void {
  const vec4 = a.c % 4 === 0 && a.wc === 1 && a.wj % 4 === 0;
  const drop = !!a.dropout && a.dropout.p > 0;
  const kernel = kernels.get({ ...mod, entryPoint: vec4 ? 'down' : 'down_any', constants: { DROPOUT: drop } });
  const params = loraParams({ m: a.m, k: a.c, r: a.r, w_j: a.wj, w_c: a.wc, scale: a.scale, ...dropoutParams(drop ? a.dropout : null) });
  kernels.dispatchAt(pass, kernel, [[0, a.g], [1, a.w], [3, a.out]], params, [Math.ceil(a.m / DOWN_ROWS), Math.ceil(a.r / LORA_J_GROUP)]);
}

export interface LoraUpArgs {
  /** [m, r] f32. */
  f: GPUBuffer;
  /** W(j, c) = w[j · wj + c · wc], f32. */
  w: GPUBuffer;
  wj: number;
  wc: number;
  /** [m, c] in the module's R: y = (y if accumulate) + scale · f · W. */
  y: GPUBuffer;
  m: number;
  c: number;
  r: number;
  scale: number;
  accumulate: boolean;
  /** Dropout of the output (the backward's dx: the forward's mask on x). */
  dropout?: LoraDropoutDraw | null;
}

/** y[m, c] = (y[m, c]) + scale · mask · Σ_j f[m, j] · W(j, c) (shaders/lora.wgsl up). */
export function encodeLoraUp(kernels: Kernels, pass: GPUComputePassEncoder, mod: LoraModule, a: LoraUpArgs): void {
  const drop = !!a.dropout && a.dropout.p > 0;
  const kernel = kernels.get({ ...mod, entryPoint: 'up', constants: { DROPOUT: drop, UP_AHEAD: upAhead(kernels) } });
  const cols = Math.ceil(a.c / LORA_COLS);
  const { rows, blocks } = splitRows(a.m, cols, UP_MIN_ROWS, UP_TARGET_WORKGROUPS);
  const params = loraParams({ m: a.m, k: a.c, r: a.r, w_j: a.wj, w_c: a.wc, rows, accumulate: a.accumulate ? 1 : 0, scale: a.scale, ...dropoutParams(drop ? a.dropout : null) });
  kernels.dispatchAt(pass, kernel, [[1, a.w], [2, a.f], [4, a.y]], params, [cols, blocks]);
}

/**
 * Rows a row slot of lora.wgsl's `up` takes a trip: 4 (the H200: 0.334 -> 0.187 ms at the 8B's
 * 4096 -> 14336 against one row a trip), but 2 on SwiftShader (Chromium's CPU Vulkan, where the
 * browser tests run), whose JIT did not finish compiling the four-row kernel in minutes.
 */
export function upAhead(kernels: Kernels): 2 | 4 {
  return kernels.gpu.info.architecture === 'swiftshader' ? 2 : 4;
}

/**
 * Rows per workgroup (a multiple of 4: the row slots) and how many such blocks cover m, for a grid
 * of `others` workgroups per block: about `target` workgroups in all, at least `minRows` rows each.
 */
export function splitRows(m: number, others: number, minRows: number, target: number): { rows: number; blocks: number } {
  const want = Math.max(1, Math.min(Math.ceil(target / others), Math.floor(m / minRows)));
  const rows = 4 * Math.ceil(m / want / 4);
  return { rows, blocks: Math.max(1, Math.ceil(m / rows)) };
}
