// The tensor-core GEMM (shaders/matmul-mma.wgsl): out = a · op(B) on subgroup matrices, f16
// operands and f32 accumulation, for devices whose adapter offers the f16 16x16x16 configuration on
// 32-wide subgroups (GpuInfo.mmaF16: NVIDIA under Vulkan with Dawn's toggles, DESIGN.md). B is a
// dense f16 matrix or an NF4 weight dequantized tile by tile; an f32 a is first rounded to f16 row
// by row with a power-of-two scale per row (shaders/f16-rows.wgsl), which the epilogue undoes. The
// SIMT kernels (matmul.ts, nf4-matmul.ts) stay the fallback and the reference: the callers choose
// this one where it applies (mmaApplies).
//
// This file generates the per-tiling parts of the shader: the accumulators, the register shares
// and the multiply step are written out by name, not as arrays indexed in loops (NVIDIA's compiler
// kept such arrays in local memory in the SIMT kernels; subgroup matrices must stay in registers).
import { expectShape, numel, type DType, type Tensor } from './tensor.ts';
import { grid, type Kernel, type Kernels } from './kernels.ts';
import { gpuMemory, trackedBuffer } from './gpu-memory.ts';
import { NF4_WGSL, type Nf4GpuWeight } from './nf4.ts';
import type { GpuInfo } from './gpu.ts';
import template from '../../shaders/matmul-mma.wgsl?raw';
import f16RowsSource from '../../shaders/f16-rows.wgsl?raw';
import denseSource from '../../shaders/matmul-mma-dense.wgsl?raw';
import nf4Source from '../../shaders/matmul-mma-nf4.wgsl?raw';
import loraSource from '../../shaders/matmul-mma-lora.wgsl?raw';
import loraDownSource from '../../shaders/matmul-mma-lora-down.wgsl?raw';

/** How a workgroup splits its block: sgr x sgc subgroups, each tm x tn result matrices of 16x16; bk per k step. */
export interface MmaTiling {
  tm: number;
  tn: number;
  sgr: number;
  sgc: number;
  bk: number;
  /** Workgroup memory the kernel may take, if less than MMA_WORKGROUP_BYTES (e.g. half, for two workgroups an SM). */
  memory?: number;
}

/** Tilings the benchmark compares (chooseMma picks among them). */
export const MMA_TILINGS: Record<string, MmaTiling> = {
  '128x128-w8-k64': { tm: 2, tn: 4, sgr: 4, sgc: 2, bk: 64 },
  '128x128-w8-k32': { tm: 2, tn: 4, sgr: 4, sgc: 2, bk: 32 },
  '128x128-w4-k32': { tm: 4, tn: 4, sgr: 2, sgc: 2, bk: 32 },
  '128x128-w4-k64': { tm: 4, tn: 4, sgr: 2, sgc: 2, bk: 64 },
  '128x256-w8-k32': { tm: 4, tn: 4, sgr: 2, sgc: 4, bk: 32 },
  '256x128-w8-k32': { tm: 4, tn: 4, sgr: 4, sgc: 2, bk: 32 },
  '128x256-w8-k48': { tm: 4, tn: 4, sgr: 2, sgc: 4, bk: 48 },
};

/**
 * The tiling and load width measured fastest on the H200 with the tiles in per-subgroup blocks read
 * at constant offsets (Chrome's default robustness; the SIMT kernels: 23-30 TFLOP/s). Dense f16 B:
 * 256x128 blocks of eight subgroups with k steps of 32, 144 TFLOP/s at 4096^3 (f32 a 137) against
 * 136 (130) for 128x128 with k steps of 64 once the tiles' stores were free of bank conflicts
 * (session 12, bench/h200-2026-11-30-s12-mma.json; the 8B lm_head's loss and backward 51.4 -> 49.2
 * ms); before that 128x128-k64 led (session 10: 120 against 111). NF4, forward (x · Wᵀ) and backward
 * (dy · W): 256x128 blocks of eight subgroups, k steps of 32, vector loads of a: 96 / 102 against
 * 94 / 92 for 128x128 with k steps of 64 once interior blocks skip the bounds checks (session 7,
 * bench/h200-2026-11-29-s7-mma-inside.json; 8B training 1,520 against 1,473 tok/s in one call,
 * -s7-models-nf4-*.json; the 1B the same). (Session 5: 85 both with 128x128; before the blocks 68-73.)
 * An NF4 product whose 256x128 grid is shorter than SMALL_GRID workgroups (the k and v projections'
 * forward: 64 at an 8B's 4096 -> 1024, 32 at a 1B's) takes 128x128 blocks instead: twice the
 * workgroups for a GPU that runs one such workgroup per SM (the H200: 132 SMs).
 * A dense a · B (transB false: in training, the lm_head's dlogits · E) takes 128x256
 * blocks with k steps of 48 (the epilogue's stage in two turns to fit): 207-210 -> 250-253 TFLOP/s at
 * 4096^3, the lm_head's dlogits · E 202-205 -> 233-238, in three calls (session 21,
 * bench/h200-2026-11-30-s21-*.json); the same tiling takes x·Bᵀ 200 -> 178, NF4 188 / 205 -> 152 / 164.
 * Since session 22 a dense b's products stage shares of eight (wideShares), on which the other tilings
 * were compared again: 256x128-k48 x·Bᵀ 238 against 233 (+2%, not taken), the rest slower or even
 * (bench/h200-2026-11-30-s22-ablate-tilings.json).
 */
export function chooseMma(kind: MmaOperand['kind'], m = Infinity, nc = Infinity, transB = true): { tiling: MmaTiling; vec: boolean } {
  if (kind === 'dense') return { tiling: MMA_TILINGS[transB ? '256x128-w8-k32' : '128x256-w8-k48'], vec: true };
  const wide = MMA_TILINGS['256x128-w8-k32'];
  const { bm, bn } = blockOf(wide);
  const small = Math.ceil(m / bm) * Math.ceil(nc / bn) < SMALL_GRID;
  return { tiling: small ? MMA_TILINGS['128x128-w8-k64'] : wide, vec: true };
}

/** Whether the grid's x counts row blocks (the shader's ROWS_FASTEST): for x·Wᵀ (transB), whose
 * column blocks (W's rows: up to 14336 / 128 = 112) would otherwise fill the GPU with one row block
 * of a read by every SM at once; the backward's dy·W keeps columns fastest. */
export function rowsFastest(transB: boolean): boolean {
  return transB;
}

/** Workgroups below which a grid of the 256x128 NF4 tiling leaves SMs idle (chooseMma). */
export const SMALL_GRID = 128;

/** B: a dense f16 matrix (its shape the product's; `range` binds those rows of a larger buffer,
 * e.g. one vocabulary chunk of the lm_head's E), or an NF4 weight. */
export type MmaOperand = { kind: 'dense'; b: Tensor; range?: { offset?: number; size?: number } } | { kind: 'nf4'; w: Nf4GpuWeight };

/** A benchmark's edit of the generated shader, named by `tag` in the kernel's name. */
export interface MmaEdit {
  tag: string;
  source: (source: string) => string;
}

/** What the generated shader depends on besides the tiling. */
export interface MmaVariant {
  kind: MmaOperand['kind'];
  transB: boolean;
  /** Rows of a (and of a dense b) hold a multiple of 4 elements: one vector load per share. */
  vec: boolean;
  /** A dense b's product whose rows hold a multiple of 8 (a's and b's): shares of eight elements, one
   * 16-byte load each (wideShares). */
  wide: boolean;
  /** a came as f32 and was scaled row by row (shaders/f16-rows.wgsl): the epilogue scales back. */
  scaled: boolean;
  /** 16-wide k steps of LoRA's term, ceil(r / 16) (shaders/matmul-mma-lora.wgsl), 0: none. */
  lora: number;
  /** out's rows hold a multiple of 4 elements: the epilogue stores 16 bytes at a time (write_stage4):
   * the 8B step's NF4 forward GEMMs 319.6 -> 305.7 ms, backward 163.9 -> 152.4 against scalar
   * stores (session 13; the ablation had the forward's stores at 12% of it). */
  vecOut: boolean;
}

/** LoRA's term added to the product: out += scale · u · op(w) (shaders/matmul-mma-lora.wgsl). */
export interface MmaLora {
  /** [m, r] f32: x · Aᵀ (the forward), or du = s · dy · B (the backward, scale 1). */
  u: Tensor;
  /** f32, [nc, r] with transB (lora_B), else [r, nc] (lora_A). */
  w: Tensor;
  scale: number;
  /**
   * u computed here first (written, then added as above): u = down.scale · a · down.dᵀ on the tensor
   * cores from a's f16 rows, the GEMM's own (shaders/matmul-mma-lora-down.wgsl). d [r, ki] f32: the
   * forward's lora_A (u = x · Aᵀ), the backward's Bᵀ (du = s · dy · B). Needs mmaTakesLoraDown.
   */
  down?: { d: Tensor; scale: number };
}

/** Whether encodeMmaMatmul can compute LoRA's u itself (`lora.down`): an f32 a (converted to f16 rows anyway), ki % 16 == 0. */
export function mmaTakesLoraDown(a: Tensor, ki: number): boolean {
  return a.dtype === 'f32' && ki % 16 === 0;
}

export interface MmaMatmulShape {
  /** Rows of a and out. */
  m: number;
  /** Columns of out. */
  nc: number;
  /** The reduction. */
  ki: number;
  /** op(B) = Bᵀ for B stored [nc, ki] (nn.Linear's layout); else B is [ki, nc]. */
  transB: boolean;
  /** f32 [nc], added to every row. */
  bias?: Tensor;
  /** out += result. */
  accumulate?: boolean;
  /** LoRA's term, added before the epilogue. */
  lora?: MmaLora;
  /** a's f16 rows as encodeMmaRows recorded them, for several products of one a (f32). */
  rows?: F16Rows;
}

/** Whether the tensor-core kernel can take this product on this device: f16 subgroup matrices, and B
 * an f16 matrix or an NF4 weight whose rows hold a multiple of 8 elements (its words are decoded whole). */
export function mmaApplies(info: GpuInfo, b: MmaOperand): boolean {
  if (!info.mmaF16) return false;
  return b.kind === 'dense' ? b.b.dtype === 'f16' : b.w.shape[1] % 8 === 0;
}

/** Records out = a · op(B) (+ bias) (+ out) into `pass`. a [m, ki] f16 or f32; out [m, nc] f16 or f32. */
export function encodeMmaMatmul(
  kernels: Kernels,
  pass: GPUComputePassEncoder,
  a: Tensor,
  b: MmaOperand,
  out: Tensor,
  s: MmaMatmulShape,
  /** Benchmark experiments only: a tiling and load width other than chooseMma's, or the shader
   * edited (tools/bench/mma-ablate.ts times it with parts taken out). */
  force: { tiling?: MmaTiling; vec?: boolean; wide?: boolean; edit?: MmaEdit } = {},
): void {
  if (!kernels.gpu.info.mmaF16) throw new Error('mma matmul: this device has no f16 16x16x16 subgroup matrices');
  if (numel(a.shape) !== s.m * s.ki) throw new Error(`mma matmul: a has shape [${a.shape}], expected ${s.m} x ${s.ki} elements`);
  if (numel(out.shape) !== s.m * s.nc) throw new Error(`mma matmul: out has shape [${out.shape}], expected ${s.m} x ${s.nc} elements`);
  if (out.buffer === a.buffer) throw new Error('mma matmul: the output must not be the input');
  const wShape = s.transB ? [s.nc, s.ki] : [s.ki, s.nc];
  if (b.kind === 'dense') {
    expectShape('mma matmul', b.b, wShape, 'B');
    if (b.b.dtype !== 'f16') throw new Error(`mma matmul: a dense B must be f16, not ${b.b.dtype}`);
  } else {
    if (b.w.shape.join() !== wShape.join()) throw new Error(`mma matmul: W has shape [${b.w.shape}], expected [${wShape}]`);
    if (b.w.shape[1] % 8 !== 0) throw new Error(`mma matmul: W's rows hold ${b.w.shape[1]} elements, not a multiple of 8`);
  }
  if (s.bias) {
    expectShape('mma matmul', s.bias, [s.nc], 'bias');
    if (s.bias.dtype !== 'f32') throw new Error(`mma matmul: bias must be f32, not ${s.bias.dtype}`);
  }
  const r = s.lora ? checkLora(s.lora, s) : 0;
  const chosen = chooseMma(b.kind, s.m, s.nc, s.transB);
  const tiling = force.tiling ?? chosen.tiling;
  const aligned = (n: number) => s.ki % n === 0 && (b.kind === 'nf4' || s.transB || s.nc % n === 0);
  const vec = force.vec ?? (chosen.vec && aligned(4));
  const wide = force.wide ?? (vec && wideShares(b.kind) && aligned(8));
  const v: MmaVariant = { kind: b.kind, transB: s.transB, vec, wide, scaled: a.dtype === 'f32', lora: Math.ceil(r / 16), vecOut: s.nc % 4 === 0 };
  if (v.vec && !aligned(4)) throw new Error('mma matmul: vector loads need rows of a multiple of 4');
  if (v.wide && (!v.vec || !wideShares(b.kind) || !aligned(8))) throw new Error('mma matmul: shares of eight need a dense b, vector loads and rows of a multiple of 8');
  const kernel = mmaKernel(kernels, v, tiling, out.dtype, force.edit);
  const bs = Math.log2(b.kind === 'nf4' ? b.w.blocksize : 1);
  if (!Number.isInteger(bs)) throw new Error(`mma matmul: blocksize is not a power of two`);
  const down = s.lora?.down;
  if (s.rows && (down || !v.scaled)) throw new Error("mma matmul: a's f16 rows come with an f32 a, and its adapters' u's with them (encodeMmaRows)");
  const a16 = s.rows ?? (v.scaled ? encodeMmaRows(kernels, pass, a, s.m, s.ki, down ? [{ d: down.d, u: s.lora!.u, scale: down.scale }] : []) : { values: a.buffer, scales: undefined });
  // Unused bindings take a read-only buffer of the product (never read: has_bias says so).
  const stand = b.kind === 'nf4' ? b.w.absmax : b.b.buffer;
  const bindings: [number, GPUBuffer | GPUBufferBinding][] =
    b.kind === 'nf4'
      ? [
          [0, a16.values],
          [1, b.w.words],
          [2, b.w.absmax],
        ]
      : [
          [0, a16.values],
          [1, b.range ? { buffer: b.b.buffer, ...b.range } : b.b.buffer],
        ];
  bindings.push([3, s.bias?.buffer ?? stand], [4, out.buffer]);
  if (a16.scales) bindings.push([6, a16.scales]);
  if (s.lora) bindings.push([7, s.lora.u.buffer], [8, s.lora.w.buffer]);
  const params = {
    m: s.m,
    nc: s.nc,
    ki: s.ki,
    wc: b.kind === 'nf4' ? b.w.shape[1] : 0,
    bs_shift: bs,
    has_bias: s.bias ? 1 : 0,
    accumulate: s.accumulate ? 1 : 0,
    lora_r: r,
    lora_scale: s.lora?.scale ?? 0,
  };
  const { bm, bn } = blockOf(tiling);
  const [rowBlocks, colBlocks] = [Math.ceil(s.m / bm), Math.ceil(s.nc / bn)];
  kernels.dispatchAt(pass, kernel, bindings, params, rowsFastest(s.transB) ? [rowBlocks, colBlocks] : [colBlocks, rowBlocks]);
}

/** LoRA's shapes against the product's; returns r. */
function checkLora(l: MmaLora, s: MmaMatmulShape): number {
  const r = l.u.shape[l.u.shape.length - 1];
  if (numel(l.u.shape) !== s.m * r) throw new Error(`mma matmul: LoRA's u has shape [${l.u.shape}], expected [${s.m}, r]`);
  expectShape('mma matmul', l.w, s.transB ? [s.nc, r] : [r, s.nc], s.transB ? "LoRA's B" : "LoRA's A");
  if (l.u.dtype !== 'f32' || l.w.dtype !== 'f32') throw new Error(`mma matmul: LoRA's u and weight must be f32, not ${l.u.dtype}/${l.w.dtype}`);
  if (!Number.isFinite(l.scale)) throw new Error(`mma matmul: LoRA's scale ${l.scale} is not finite`);
  return r;
}

/**
 * The scratch an f32 a is converted into, one per device: its f16 values and its row scales. The
 * dispatches of a pass run in order, so each GEMM reads what the conversion just before it wrote.
 * Grown by doubling; a replaced buffer is left to the garbage collector, not destroyed (commands
 * recorded but not yet submitted may still use it). The largest a in training is a gradient
 * [tokens, intermediate]: 58.7 MB at 2048 tokens of an 8B.
 */
const f16Scratch = new WeakMap<GPUDevice, GPUBuffer>();

function scratch(device: GPUDevice, bytes: number): GPUBuffer {
  let buffer = f16Scratch.get(device);
  if (!buffer || buffer.size < bytes) {
    if (buffer) gpuMemory(device).forget(buffer);
    const size = Math.max(bytes, 16 << 20, (buffer?.size ?? 0) * 2);
    buffer = trackedBuffer(device, { size, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC, label: 'mma.f16_rows' }, 'scratch');
    f16Scratch.set(device, buffer);
  }
  return buffer;
}

/** The row-scaled f16 copy of a (encodeF16Rows): values [rows, k] and (2^s, 2^-s) per row. */
export interface F16Rows {
  values: GPUBufferBinding;
  scales: GPUBufferBinding;
  /** With LoRA's down weights: the row where theirs start (a multiple of 16 after a's m). */
  dRow?: number;
}

/** An adapter's down-projection from a's f16 rows (encodeMmaRows): u = scale · a · dᵀ, d [r, ki] f32. */
export interface MmaDown {
  d: Tensor;
  u: Tensor;
  scale: number;
}

/** Adapters one down dispatch (and one f16-rows) takes: q/k/v. */
export const MMA_DOWN_GROUP = 3;

/**
 * Records the row-scaled f16 copy of a [m, k] (f32): its values at the start of the scratch, the
 * scales after them. With down weights `ds` (up to MMA_DOWN_GROUP, each [r_g, k] f32; k % 4 == 0)
 * their rows too, in the same dispatch, from row dRow on, each in whole blocks of 16 rows as a's
 * (the down kernel reads them so), the rows past m and r_g left as they are.
 */
export function encodeF16Rows(kernels: Kernels, pass: GPUComputePassEncoder, a: Tensor, m: number, k: number, ds: readonly Tensor[] = []): F16Rows {
  const vec = k % 4 === 0;
  if (ds.length > MMA_DOWN_GROUP) throw new Error(`mma matmul: ${ds.length} down weights, at most ${MMA_DOWN_GROUP}`);
  for (const d of ds) {
    if (d.shape.length !== 2 || d.shape[1] !== k) throw new Error(`mma matmul: LoRA's down weight has shape [${d.shape}], expected [r, ${k}]`);
    if (d.dtype !== 'f32' || !vec) throw new Error(`mma matmul: LoRA's down weight must be f32 (not ${d.dtype}) with k % 4 == 0 (k ${k})`);
  }
  const blocks = (n: number) => Math.ceil(n / 16) * 16;
  const dRow = ds.length ? blocks(m) : m;
  const starts = [dRow];
  for (const d of ds) starts.push(starts[starts.length - 1] + blocks(d.shape[0]));
  const rows = starts[starts.length - 1];
  const valueBytes = Math.ceil((rows * k * 2) / 256) * 256; // the scales start on a binding-offset boundary
  const buffer = scratch(kernels.device, valueBytes + rows * 8);
  const values = { buffer, offset: 0, size: valueBytes };
  const scales = { buffer, offset: valueBytes, size: rows * 8 };
  const kernel = kernels.get({ name: 'f16-rows', source: f16RowsSource, dtype: a.dtype, entryPoint: vec ? 'main4' : 'main' });
  const bindings: [number, GPUBuffer | GPUBufferBinding][] = [[0, a.buffer], [1, values], [2, scales]];
  if (vec) for (let g = 0; g < MMA_DOWN_GROUP; g++) bindings.push([4 + g, ds[g]?.buffer ?? kernels.placeholder(g)]);
  const at = (g: number) => starts[Math.min(g, ds.length)];
  const r = (g: number) => ds[g]?.shape[0] ?? 0;
  kernels.dispatchAt(pass, kernel, bindings, { m, k, d_row: dRow, d1_row: at(1), d2_row: at(2), r0: r(0), r1: r(1), r2: r(2) }, grid(kernels, rows));
  return { values, scales, dRow: ds.length ? dRow : undefined };
}

/**
 * Records a's f16 rows for the tensor-core products of one a (encodeMmaMatmul's `rows`) and the u's
 * of up to MMA_DOWN_GROUP adapters on it: one f16-rows dispatch and one down dispatch
 * (shaders/matmul-mma-lora-down.wgsl) for all of them. a f32 [m, ki], ki % 16 == 0 with adapters.
 */
export function encodeMmaRows(kernels: Kernels, pass: GPUComputePassEncoder, a: Tensor, m: number, ki: number, downs: readonly MmaDown[] = []): F16Rows {
  if (downs.length && !mmaTakesLoraDown(a, ki)) throw new Error(`mma matmul: LoRA's down-projection needs an f32 a and ki % 16 == 0 (a ${a.dtype}, ki ${ki})`);
  const rows = encodeF16Rows(kernels, pass, a, m, ki, downs.map((d) => d.d));
  if (!downs.length) return rows;
  const blocks = downs.map((d) => Math.ceil(d.d.shape[0] / 16));
  const b = (g: number) => blocks.slice(0, g).reduce((x, y) => x + y, 0);
  const params: Record<string, number> = { m, k: ki, d_row: rows.dRow!, b1: b(1), b2: b(2) };
  const bindings: [number, GPUBuffer | GPUBufferBinding][] = [[0, rows.values], [1, rows.scales]];
  for (let g = 0; g < MMA_DOWN_GROUP; g++) {
    const d = downs[g];
    if (d) expectShape('mma matmul', d.u, [m, d.d.shape[0]], `LoRA's u ${g}`);
    params[`r${g}`] = d ? d.d.shape[0] : 0;
    params[`scale${g}`] = d?.scale ?? 0;
    bindings.push([2 + g, d?.u.buffer ?? kernels.placeholder(g)]);
  }
  const kernel = kernels.get({ name: 'matmul-mma-lora-down', source: loraDownSource16(), dtype: 'f32' });
  kernels.dispatchAt(pass, kernel, bindings, params, [Math.ceil(m / 16), b(downs.length)]);
  return rows;
}

/** The down kernel's whole source: its header, and its AHEAD loads of each operand written out by name (matrices stay in registers). */
export function loraDownSource16(): string {
  if (loraDownText) return loraDownText;
  const ahead = Number(/const AHEAD = (\d+)u;/.exec(loraDownSource)![1]);
  const range = (n: number) => Array.from({ length: n }, (_, i) => i);
  const steps = range(ahead).map((i) => [
    `let x${i} = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&rows16, at + 16u * (t + ${i}u * SUBGROUPS), p.k);`,
    `let w${i} = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&rows16, dt + 16u * (t + ${i}u * SUBGROUPS), p.k);`,
  ]);
  const body = [...steps.map((s) => s[0]), ...steps.map((s) => s[1]), ...range(ahead).map((i) => `acc = subgroupMatrixMultiplyAccumulate(x${i}, w${i}, acc);`)];
  const header = ['enable f16;', 'enable chromium_experimental_subgroup_matrix;', 'diagnostic(off, chromium.subgroup_matrix_uniformity);'];
  return (loraDownText = [...header, loraDownSource.replace('//{{AHEAD}}', body.join('\n    '))].join('\n'));
}

let loraDownText: string | undefined;

/** Kernels by variant, tiling and output type: a training step records thousands of these products,
 * and building the spec (a long source, its name) on each one costs tens of microseconds of CPU. */
const mmaKernels = new WeakMap<Kernels, Map<string, Kernel>>();

function mmaKernel(kernels: Kernels, v: MmaVariant, tiling: MmaTiling, out: DType, edit?: MmaEdit): Kernel {
  let cache = mmaKernels.get(kernels);
  if (!cache) mmaKernels.set(kernels, (cache = new Map()));
  const name = `matmul-mma(${variantName(v)},${tiling.tm}x${tiling.tn}/${tiling.sgr}x${tiling.sgc}/${tiling.bk}${tiling.memory ? `/m${tiling.memory}` : ''})(R=${out})${edit ? `[${edit.tag}]` : ''}`;
  let kernel = cache.get(name);
  if (!kernel) {
    // f16 throughout whatever the storage type (T is unused); R is the output's type.
    const source = mmaSource(v, tiling);
    kernel = kernels.get({ name, source: `alias R = ${out};\n${edit ? edit.source(source) : source}`, dtype: 'f32' });
    cache.set(name, kernel);
  }
  return kernel;
}

function variantName(v: MmaVariant): string {
  return `${v.kind},${v.transB ? 'T' : 'N'}${v.vec ? ',vec' : ''}${v.wide ? ',wide' : ''}${v.scaled ? ',scaled' : ''}${v.lora ? `,lora${v.lora}` : ''}${v.vecOut ? ',vo' : ''}`;
}

function blockOf(t: MmaTiling): { bm: number; bn: number; threads: number } {
  return { bm: t.sgr * t.tm * 16, bn: t.sgc * t.tn * 16, threads: t.sgr * t.sgc * 32 };
}

const sources = new Map<string, string>();

/** The whole shader for one variant and tiling (cached: recording must not rebuild it). */
export function mmaSource(v: MmaVariant, t: MmaTiling): string {
  const key = `${variantName(v)}|${JSON.stringify(t)}`;
  let src = sources.get(key);
  if (!src) sources.set(key, (src = generate(v, t)));
  return src;
}

/**
 * fetch_NAME_share(r, c, rows, width): a share of row r of the binding NAME (rows of `width`) from column c
 * (zeros outside): with `per` 8 one 16-byte load (width and c multiples of 8: eight f16 as four
 * words), else four f16, with `vec` (width and c multiples of 4) one vector load, else element by element.
 */
function fetchShare(name: 'a' | 'b', vec: boolean, per: 4 | 8): string {
  const binding = `@group(0) @binding(${name === 'a' ? 0 : 1}) var<storage, read> ${name}`;
  if (per === 8) {
    return `${binding}: array<vec4<u32>>;
fn fetch_${name}_share(r: u32, c: u32, rows: u32, width: u32) -> Share {
  var v = Share(0u);
  if (r < rows && c < width) { v = ${name}[(r * width + c) / 8u]; }
  return v;
}
/** The same where r and c + 7 are known to be inside (no checks). */
fn fetch_${name}_share_in(r: u32, c: u32, width: u32) -> Share {
  return ${name}[(r * width + c) / 8u];
}`;
  }
  const inside = vec
    ? `return ${name}[(r * width + c) / 4u];`
    : `let base = r * width + c;
  return vec4<f16>(${name}[base], ${name}[base + 1u], ${name}[base + 2u], ${name}[base + 3u]);`;
  const load = vec
    ? `if (c < width) { v = ${name}[(r * width + c) / 4u]; }`
    : `let base = r * width + c;
    if (c + 3u < width) {
      v = vec4<f16>(${name}[base], ${name}[base + 1u], ${name}[base + 2u], ${name}[base + 3u]);
    } else {
      for (var i = 0u; i < 4u; i++) {
        if (c + i < width) { v[i] = ${name}[base + i]; }
      }
    }`;
  return `${binding}: array<${vec ? 'vec4<f16>' : 'f16'}>;
fn fetch_${name}_share(r: u32, c: u32, rows: u32, width: u32) -> vec4<f16> {
  var v = vec4<f16>(0.0);
  if (r < rows) {
    ${load}
  }
  return v;
}
/** The same where r and c + 3 are known to be inside (no checks). */
fn fetch_${name}_share_in(r: u32, c: u32, width: u32) -> vec4<f16> {
  ${inside}
}`;
}

/**
 * The statements that store a share v at (blk, o) of `tile`: eight elements from four words (PER 8),
 * or four with the lane's word order sw (storeLayout: the second word first where sw is 1).
 */
function storeShare(tile: string, per: 4 | 8): string {
  if (per === 8) {
    const e = (i: number) => `${tile}[blk][o${i ? ` + ${i}u` : ''}] = ${i < 4 ? 'lo' : 'hi'}.${'xyzw'[i % 4]};`;
    return ['let lo = bitcast<vec4<f16>>(v.xy);', 'let hi = bitcast<vec4<f16>>(v.zw);', ...Array.from({ length: 8 }, (_, i) => e(i))].join('\n  ');
  }
  return [
    'let w = select(v, v.zwxy, sw == 1u);',
    'let o0 = o + 2u * sw;',
    'let o1 = o + 2u - 2u * sw;',
    `${tile}[blk][o0] = w.x;`,
    `${tile}[blk][o0 + 1u] = w.y;`,
    `${tile}[blk][o1] = w.z;`,
    `${tile}[blk][o1 + 1u] = w.w;`,
  ].join('\n  ');
}

function aSource(v: MmaVariant): string {
  const fetch = `alias Share = ${v.wide ? 'vec4<u32>' : 'vec4<f16>'};
${fetchShare('a', v.vec, sharePer(v))}
fn fetch_a(r: u32, k: u32) -> Share { return fetch_a_share(r, k, p.m, p.ki); }
fn fetch_a_in(r: u32, k: u32) -> Share { return fetch_a_share_in(r, k, p.ki); }`;
  return v.scaled
    ? `${fetch}
@group(0) @binding(6) var<storage, read> row_scale: array<vec2<f32>>; // (2^s, 2^-s) per row of a
var<workgroup> a_scale: array<f32, BM>; // the block's rows' 2^-s (4 bytes a row: room for the epilogue's second stage)
fn stage_scales(tid: u32, row0: u32) {
  for (var i = tid; i < BM; i += THREADS) { a_scale[i] = row_scale[min(row0 + i, p.m - 1u)].y; }
}
fn unscale(rb: u32, v: f32) -> f32 { return v * a_scale[rb]; }
// 2^s from 2^-s exactly: the exponent's bits mirrored around 127.
fn lora_row(rb: u32) -> f32 { return bitcast<f32>((254u << 23u) - bitcast<u32>(a_scale[rb])) * (1.0 / 4096.0); }
const LORA_W = 4096.0;`
    : `${fetch}
fn stage_scales(tid: u32, row0: u32) {}
fn unscale(rb: u32, v: f32) -> f32 { return v; }
fn lora_row(rb: u32) -> f32 { return 1.0; }
const LORA_W = 1.0;`;
}

/** The tiles' geometry of a tiling (as the shader's constants): row strides, block sizes, shares. */
function tileShape(v: Pick<MmaVariant, 'kind' | 'transB' | 'wide'>, t: MmaTiling) {
  const { bm, bn, threads } = blockOf(t);
  const sa = t.bk + 8;
  // B's rows: k (transposed) or the TN * 16 columns of one subgroup column block, padded.
  const sb = v.transB ? t.bk + 8 : 16 * t.tn + 8;
  const bSub = v.transB ? 16 * t.tn * sb : t.bk * sb;
  const aPer = sharePer(v);
  const perShare = v.kind === 'nf4' ? 8 : aPer;
  const aFetches = (bm * t.bk) / (aPer * threads);
  const bFetches = (bn * t.bk) / (perShare * threads);
  if (!Number.isInteger(aFetches) || !Number.isInteger(bFetches) || t.bk % 16 !== 0) {
    throw new Error(`mma matmul: tiling ${JSON.stringify(t)} does not divide into whole shares`);
  }
  return { bm, bn, threads, sa, sb, bSub, aPer, perShare, aFetches, bFetches };
}

export interface StoreLayout {
  /** a's rows a subgroup's lanes take are this many apart (a_slot's A_SPREAD). */
  aSpread: number;
  /** Lane l starts its share at word (l >> shift) % (words in a share): A_ROT, B_ROT. */
  aRot: number;
  bRot: number;
  /** Bank rows (wavefronts) a k step's stores take over all subgroups, and the least possible (one
   * per scalar store instruction: 32 lanes, 32 banks; with shares of eight, two per 8-byte store). */
  wavefronts: { a: number; b: number };
  least: { a: number; b: number };
}

/**
 * The order in which lanes store their shares of the tiles (the shader's A_SPREAD, A_ROT, B_ROT),
 * chosen by counting banks: a scalar f16 store instruction takes one pass through shared memory
 * per distinct 4-byte word in its busiest of 32 banks. In element order, lanes whose shares start a
 * multiple of 128 bytes apart (tile rows padded for the matrix loads, four or eight elements a
 * share) hit the same bank two to four ways. A dense B keeps element order all the same
 * (elementOrderStores); the counts then say what it costs. Shares of eight are counted as the
 * driver stores them, two 8-byte stores each (store8Passes), in the rows shareOrder gives them.
 */
export function storeLayout(v: MmaVariant, t: MmaTiling): StoreLayout {
  const { threads, sa, aPer, perShare, aFetches, bFetches } = tileShape(v, t);
  const share = shareOrder(v, t);
  // Where share i of invocation tid starts in its tile (f16 elements), as a_slot / b_slot / b_at place it.
  const aRows = Math.floor(32 / (t.bk / aPer)); // rows one subgroup's shares of a cover (a_slot's integer division)
  const aOffset = (spread: number) => (tid: number, i: number) => {
    const f = share(tid + i * threads);
    const [q, k] = [Math.floor(f / (t.bk / aPer)), (f % (t.bk / aPer)) * aPer];
    const w = Math.floor(q / aRows);
    const row = Math.floor(w / spread) * aRows * spread + (q % aRows) * spread + (w % spread);
    return Math.floor(row / (16 * t.tm)) * 16 * t.tm * sa + (row % (16 * t.tm)) * sa + k;
  };
  const bOffset = bShareOffset(v, t);
  if (v.wide) {
    // Shares of eight: the driver stores each as two 8-byte stores (STS.64 in its SASS), which
    // shared memory takes a half-warp at a time: at least two passes a store.
    const least = { a: (aFetches * threads) / 8, b: (bFetches * threads) / 8 };
    return { aSpread: 1, aRot: 5, bRot: 5, wavefronts: { a: store8Passes(aOffset(1), threads, aFetches), b: store8Passes(bOffset, threads, bFetches) }, least };
  }
  const least = { a: (aFetches * threads * aPer) / 32, b: (bFetches * threads * perShare) / 32 };
  if (elementOrderStores(v)) {
    const a = storeWavefronts(aOffset(1), aPer, threads, aFetches, 5);
    return { aSpread: 1, aRot: 5, bRot: 5, wavefronts: { a, b: storeWavefronts(bOffset, perShare, threads, bFetches, 5) }, least };
  }
  // The fewest wavefronts; among equals the smallest spread (a subgroup's loads stay closest).
  const a = [1, 2, 4]
    .filter((spread) => (16 * t.tm) % (aRows * spread) === 0)
    .map((spread) => ({ spread, ...storeOrder(aOffset(spread), 4, threads, aFetches) }))
    .reduce((x, y) => (y.wavefronts < x.wavefronts ? y : x));
  const b = storeOrder(bOffset, perShare, threads, bFetches);
  return { aSpread: a.spread, aRot: a.shift, bRot: b.shift, wavefronts: { a: a.wavefronts, b: b.wavefronts }, least };
}

/**
 * Whether a subgroup's shares go to its tiles' rows in the order 0, 2, 4, 6, 1, 3, 5, 7 rather than
 * 0 .. 7: shares of eight along k at k steps of 32 (x·Bᵀ's a and b: four lanes a row, eight rows a
 * subgroup). The driver stores a share of eight as two 8-byte stores; in row order a half-warp's
 * lanes (rows 0-3, 80 bytes apart) meet up to three words in one bank, 12 passes a share where 4 is
 * the least; in this order 8 (store8Passes). The order that would reach 4 (half the lanes storing the
 * share's second half first) needs run-time offsets, which cost more than they saved: x·Bᵀ 233 -> 214
 * TFLOP/s, while this order took it 233 -> 239-240 and the lm_head's x·Eᵀ 230 -> 234 (H200, two calls,
 * bench/h200-2026-11-30-s23-ablate-spread*.json).
 */
export function spreadRows(v: Pick<MmaVariant, 'wide' | 'transB'>, t: MmaTiling): boolean {
  return v.wide && v.transB && t.bk / sharePer(v) === 4;
}

/** The share an invocation's f-th takes (a_slot, b_slot, store_b): f itself, or with spreadRows its lane's row permuted. */
export function shareOrder(v: Pick<MmaVariant, 'wide' | 'transB'>, t: MmaTiling): (f: number) => number {
  if (!spreadRows(v, t)) return (f) => f;
  return (f) => {
    const p = (f >> 2) & 7;
    return (f & ~28) | ((((p & 3) << 1) | (p >> 2)) << 2);
  };
}

/** shareOrder's permutation in WGSL (spread_rows). */
const SPREAD_ROWS_WGSL = `/** Share f with its lane's row in the subgroup permuted, (lane >> 2) = p -> row (p % 4) * 2 + p / 4 (spreadRows). */
fn spread_rows(f: u32) -> u32 {
  let p = (f >> 2u) & 7u;
  return (f & 0xffffffe3u) | ((((p & 3u) << 1u) | (p >> 2u)) << 2u);
}
`;

/** Passes through shared memory of shares of eight stored as two 8-byte stores each: per half-warp, its busiest bank's distinct words. */
function store8Passes(offset: (tid: number, i: number) => number, threads: number, shares: number): number {
  let total = 0;
  for (let sg = 0; sg < threads / 32; sg++) {
    for (let i = 0; i < shares; i++) {
      for (let half = 0; half < 2; half++) {
        for (let hw = 0; hw < 2; hw++) {
          const banks = new Map<number, Set<number>>();
          for (let l = 16 * hw; l < 16 * hw + 16; l++) {
            const word = (offset(sg * 32 + l, i) + 4 * half) / 2;
            for (const w of [word, word + 1]) banks.set(w % 32, (banks.get(w % 32) ?? new Set<number>()).add(w));
          }
          total += Math.max(...[...banks.values()].map((b) => b.size));
        }
      }
    }
  }
  return total;
}

/** Where share i of invocation tid starts in the B tile (f16 elements from tile_b[0]'s start), as
 * b_slot and b_at place it: column block * B_SUB + the offset in the block. */
export function bShareOffset(v: Pick<MmaVariant, 'kind' | 'transB' | 'wide'>, t: MmaTiling): (tid: number, i: number) => number {
  const { bn, threads, sb, bSub, perShare } = tileShape(v, t);
  const share = shareOrder(v, t);
  return (tid, i) => {
    const f = share(tid + i * threads);
    const along = v.transB ? t.bk : bn; // a tile row's length in the share's direction
    const [x, y] = [Math.floor(f / (along / perShare)), (f % (along / perShare)) * perShare];
    const [n, k] = v.transB ? [x, y] : [y, x];
    const offset = v.transB ? (n % (16 * t.tn)) * sb + k : k * sb + (n % (16 * t.tn));
    return Math.floor(n / (16 * t.tn)) * bSub + offset;
  };
}

/** Bank rows (wavefronts) the stores of shares of `size` elements starting at offset(tid, i) take, lane l starting at word (l >> shift) % (words in a share). */
function storeWavefronts(offset: (tid: number, i: number) => number, size: number, threads: number, shares: number, shift: number): number {
  const words = size / 2;
  let total = 0;
  for (let sg = 0; sg < threads / 32; sg++) {
    for (let i = 0; i < shares; i++) {
      for (let j = 0; j < size; j++) {
        const banks = new Map<number, Set<number>>();
        for (let l = 0; l < 32; l++) {
          const e = (j + 2 * ((l >> shift) % words)) % size;
          const word = Math.floor((offset(sg * 32 + l, i) + e) / 2);
          banks.set(word % 32, (banks.get(word % 32) ?? new Set<number>()).add(word));
        }
        total += Math.max(...[...banks.values()].map((b) => b.size));
      }
    }
  }
  return total;
}

/** The best shift for shares of `size` elements starting at offset(tid, i) (storeLayout), and its wavefronts. */
function storeOrder(offset: (tid: number, i: number) => number, size: number, threads: number, shares: number): { shift: number; wavefronts: number } {
  // shift 5: every lane in element order.
  let best = { shift: 5, wavefronts: storeWavefronts(offset, size, threads, shares, 5) };
  for (let shift = 0; shift < 5; shift++) {
    const w = storeWavefronts(offset, size, threads, shares, shift);
    if (w < best.wavefronts) best = { shift, wavefronts: w };
  }
  return best;
}

/**
 * Workgroup memory a tensor-core GEMM may take: a KiB below the H200's Vulkan limit of 48 KiB, at
 * which (49,152 bytes by Dawn's count) the forward with two stages computed wrong results there.
 * 48 KiB is also all that an SM's workgroups get together there (tools/bench/residency-probe.ts), so
 * such a kernel runs one workgroup an SM; two need under 24 KiB each (MmaTiling.memory).
 */
export const MMA_WORKGROUP_BYTES = 47 * 1024;

/**
 * Result matrices a subgroup stages a round of the epilogue: two for a dense B where the tiles leave
 * room for them (the 8B lm_head's loss 28.6 -> 21.0 ms a step on the H200), else one: the NF4
 * products took 5-16 ms a step more with two (bench/h200-2026-11-30-s14-models-8b-stage2-*.json).
 */
export function stagesPerRound(v: MmaVariant, t: MmaTiling): 1 | 2 {
  const { tiles, scales, stage } = workgroupBytes(v, t);
  return v.kind === 'dense' && (t.tm * t.tn) % 2 === 0 && tiles + scales + 2 * stage <= (t.memory ?? MMA_WORKGROUP_BYTES) ? 2 : 1;
}

/** Workgroup memory of a tiling's parts: both tiles, a's row scales, and one result matrix a subgroup of stage. */
function workgroupBytes(v: MmaVariant, t: MmaTiling): { tiles: number; scales: number; stage: number } {
  const { bm, threads, sa, bSub } = tileShape(v, t);
  return { tiles: 2 * (bm * sa + t.sgc * bSub), scales: v.scaled ? 4 * bm : 0, stage: (threads / 32) * 256 * 4 };
}

/**
 * Turns the subgroups take at the epilogue's stage: 1 (each its own area), or 2 where the tiles
 * leave room for half the subgroups' areas only (k steps of 48 at 128x256: half the subgroups stage
 * and write while the others wait at the barrier).
 */
export function stageTurns(v: MmaVariant, t: MmaTiling): 1 | 2 {
  const { tiles, scales, stage } = workgroupBytes(v, t);
  const memory = t.memory ?? MMA_WORKGROUP_BYTES;
  if (tiles + scales + stage <= memory) return 1;
  if (tiles + scales + stage / 2 <= memory) return 2;
  throw new Error(`mma matmul: tiling ${JSON.stringify(t)} takes more than ${memory} bytes of workgroup memory`);
}

/**
 * Whether the k loop stages B's shares before A's. The same work in the other order, and the driver's
 * schedule of the loop differs: x·Wᵀ from NF4 with B first ran 1.54 -> 1.28 ms at the 8B's MLP shape
 * (156 -> 189 TFLOP/s), the down's 1.64 -> 1.25, while dy·W went 1.26 -> 1.70 and a dense B moved
 * under 1% either way (bench/h200-2026-11-30-s17-ablate-store-order.json). With the stores' indices
 * free of robustness clamps (session 18) dy·W too runs faster with B first: 136 -> 205 TFLOP/s
 * (A first with the clamps: 190; bench/h200-2026-11-30-s18-ablate-search-nf4.json).
 */
export function storesBFirst(v: MmaVariant): boolean {
  return v.kind === 'nf4';
}

/**
 * Whether a dense B's GEMM and its a store their shares in element order (a's stores then take 1.5
 * passes through shared memory each at 256x128-k32, where storeLayout's order takes one). With the stores'
 * bounded indices (aStoreIndex) the driver schedules them faster so, by variant: x·Bᵀ 146 -> 163
 * TFLOP/s at 4096^3 (202 with fetchAfterFirstStep), a·B 156 -> 209 (with it), the lm_head's scaled
 * x·Eᵀ 211 -> 232 and its dlogits·E 154 -> 205 (with it); in storeLayout's order the bounded stores
 * had cost the lm_head 211 -> 152 (bench/h200-2026-11-30-s19-ablate-*.json). NF4 keeps storeLayout's
 * order: a's in element order 189 -> 165 forward.
 */
export function elementOrderStores(v: Pick<MmaVariant, 'kind'>): boolean {
  return v.kind === 'dense';
}

/**
 * Whether a dense b's product takes shares of eight elements (one 16-byte load each, where rows hold a
 * multiple of 8) rather than four (8-byte loads). The k loop's staging, not its products, bounds these
 * kernels: with the products cut to one in sixteen x·Bᵀ ran at 216 TFLOP/s against 201 whole, and
 * deeper prefetch changed nothing (214); 16-byte loads halve the load instructions (LDG.E.128 in the
 * driver's code) and took that bound to 239 (a·B 272 -> 294). (Not the L2's rate: it gives the same
 * occupancy and pattern 8 TB/s, session 23's probe; the loop runs its products, then its stores and
 * barriers, one after the other.) With constKLoop and fetchesBFirst, at 4096^3 on the H200:
 * x·Bᵀ 199-202 -> 233-236, a·B 250-251 -> 260-265, the lm_head's dlogits·E 236-237 -> 244-250, its
 * x·Eᵀ 232 -> 230-231 (bench/h200-2026-11-30-s22-*.json; NF4 keeps its own B shares).
 */
export function wideShares(kind: MmaOperand['kind']): boolean {
  return kind === 'dense';
}

/** Elements a share of a (and of a dense b) holds. */
function sharePer(v: Pick<MmaVariant, 'wide'>): 4 | 8 {
  return v.wide ? 8 : 4;
}

/**
 * Whether the k loop is bounded by a constant and left by a break: Tint guards every loop whose bound
 * is not a constant with a 64-bit iteration counter, and the driver schedules the two forms
 * differently. With shares of eight the constant bound is the faster form (x·Bᵀ 223-225 -> 233-236,
 * a·B 235-241 -> 260-264, dlogits·E 222-229 -> 244-249); with shares of four it was the slower one
 * (209 / 197 / 189 against 201 / 251 / 237: bench/h200-2026-11-30-s22-ablate-search.json).
 */
export function constKLoop(v: Pick<MmaVariant, 'wide'>): boolean {
  return v.wide;
}

/**
 * Whether the k loop fetches B's shares before A's (the same loads in another order): a dense a·B with
 * shares of eight, 260 -> 265 TFLOP/s at 4096^3 and the lm_head's dlogits·E 244 -> 250 in one call; x·Bᵀ
 * 236 either way (bench/h200-2026-11-30-s22-ablate-search.json).
 */
export function fetchesBFirst(v: Pick<MmaVariant, 'wide' | 'transB'>): boolean {
  return v.wide && !v.transB;
}

/**
 * Whether the k loop fetches the next tiles' shares after its first multiply step rather than before
 * it. Dense B but for the scaled x·Bᵀ (the lm_head's x·Eᵀ): x·Bᵀ 163 -> 202 TFLOP/s, a·B 162 -> 209,
 * scaled a·B 158 -> 205, scaled x·Bᵀ 232 -> 169 (so not there); NF4 forward 189 -> 189, backward
 * 205 -> 173 (bench/h200-2026-11-30-s19-ablate-dense-search.json, -nf4-fetch.json). With shares of
 * eight every dense product fetches before them: after, x·Bᵀ 224 -> 196, the lm_head's x·Eᵀ 223 -> 194,
 * and with the constant-bounded loop a·B 260 -> 255, dlogits·E 244 -> 240 (-s22-ablate-wide.json, -search.json).
 */
export function fetchAfterFirstStep(v: Pick<MmaVariant, 'kind' | 'scaled' | 'transB' | 'wide'>): boolean {
  return v.kind === 'dense' && !v.wide && !(v.scaled && v.transB);
}

/**
 * store_a's (blk, o) for `at` and its lane's word order sw. Bounded: reduced by constants, so that
 * Tint's range analysis bounds them inside the function and Chrome's robustness clamps no store of
 * the k loop (the kernels take this form; the other, clamped by robustness, is the ablation's).
 */
export function aStoreIndex(bounded: boolean): string {
  return bounded
    ? 'let blk = (at.x / (TM * 16u)) % (BM / (TM * 16u));\n  let o = (at.x % (TM * 16u)) * SA + at.y % BK;\n  let sw = (lane >> A_ROT) % 2u;'
    : 'let blk = at.x / (TM * 16u);\n  let o = (at.x % (TM * 16u)) * SA + at.y;\n  let sw = (lane >> A_ROT) & 1u;';
}

/** How a_slot, b_slot and store_b begin: the invocation's f-th share (with spreadRows: spread_rows of it). */
const SHARE_INDEX = 'let f = tid + i * THREADS;';

/**
 * store_b's position in the B tile, (blk, o) = b_at(b_slot(tid, i)), and for a dense B its lane's
 * word order sw. Bounded (as aStoreIndex): for f = tid + i * THREADS, scalar lets each reduced by
 * constants, which Tint's range analysis bounds (it follows no vectors and no function parameters).
 */
export function bStoreIndex(v: Pick<MmaVariant, 'kind' | 'transB' | 'wide'>, bounded: boolean): string {
  const sw = v.kind === 'dense' ? `\n  let sw = ((tid % 32u) >> B_ROT) ${bounded ? '% 2u' : '& 1u'};` : '';
  if (!bounded) return `let at = b_at(b_slot(tid, i));\n  let blk = at.x;\n  let o = at.y;${sw}`;
  const per = v.kind === 'nf4' ? 8 : sharePer(v);
  const [blk, o] = v.transB
    ? [`((f / (BK / ${per}u)) / (TN * 16u)) % SGC`, `((f / (BK / ${per}u)) % (TN * 16u)) * SB + (f % (BK / ${per}u)) * ${per}u`]
    : [`(((f % (BN / ${per}u)) * ${per}u) / (TN * 16u)) % SGC`, `((f / (BN / ${per}u)) % BK) * SB + ((f % (BN / ${per}u)) * ${per}u) % (TN * 16u)`];
  return `${SHARE_INDEX}\n  let blk = ${blk};\n  let o = ${o};${sw}`;
}

/** The template's k loop, and its form bounded by a constant (constKLoop). */
export const K_LOOP = 'for (var t = 0u; t < tiles; t++) {';
export const K_LOOP_CONST = 'for (var t = 0u; t < 0xffffffffu; t++) {\n    if (t >= tiles) { break; }';
if (!template.includes(K_LOOP)) throw new Error("mma matmul: the template's k loop changed (K_LOOP)");

/** The template's stage: one area a subgroup (THREADS / 32u), which the generator divides among turns (stageTurns). */
const STAGE_AREAS = '256u * STAGE>, THREADS / 32u>';
if (!template.includes(STAGE_AREAS)) throw new Error("mma matmul: the template's stage declaration changed (STAGE_AREAS)");

function generate(v: MmaVariant, t: MmaTiling): string {
  const { kind, transB } = v;
  const { bm, bn, threads, sa, sb, bSub, aFetches, bFetches } = tileShape(v, t);
  const order = storeLayout(v, t);
  const range = (n: number) => Array.from({ length: n }, (_, i) => i);
  const cells = range(t.tm).flatMap((i) => range(t.tn).map((j) => [i, j] as const));
  // Blocks and k steps wholly inside the matrices fetch without the bounds checks (they cost a
  // quarter of the products' rate in a kernel that only staged tiles: bench/tensor-core-notes.md).
  const fetches = (suffix: string) => {
    const as = range(aFetches).map((i) => `na${i} = fetch_a${suffix}(row0 + a_slot(tid, ${i}u).x, k0 + a_slot(tid, ${i}u).y);`);
    const bs = range(bFetches).map((i) => `nb${i} = fetch_b${suffix}(tid, ${i}u, k0, col0);`);
    return (fetchesBFirst(v) ? [...bs, ...as] : [...as, ...bs]).join('\n        ');
  };
  const fetchNext = `if (inside && k0 + BK <= p.ki) {
        ${fetches('_in')}
      } else {
        ${fetches('')}
      }`;
  const storesA = range(aFetches).map((i) => `store_a(a_slot(tid, ${i}u), na${i}, lane);`);
  const storesB = range(bFetches).map((i) => `store_b(tid, ${i}u, nb${i});`);
  const storeNext = (indent: string) => (storesBFirst(v) ? [...storesB, ...storesA] : [...storesA, ...storesB]).join(`\n${indent}`);
  // Unrolled k steps: every load reads its subgroup's block at a constant offset (see the template).
  const right = (j: number, kk: number) =>
    transB
      ? `subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&tile_b[sgc], ${16 * j * sb + kk}u, SB)`
      : `subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, row_major>(&tile_b[sgc], ${kk * sb + 16 * j}u, SB)`;
  const step = (kk: number) =>
    [
      ...range(t.tm).map((i) => `let l${i} = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&tile_a[sgr], ${16 * i * sa + kk}u, SA);`),
      ...range(t.tn).map((j) => `let r${j} = ${right(j, kk)};`),
      ...cells.map(([i, j]) => `acc${i}_${j} = subgroupMatrixMultiplyAccumulate(l${i}, r${j}, acc${i}_${j});`),
    ].join('\n      ');
  const fetchBlock = `if (more) {\n      let k0 = (t + 1u) * BK;\n      ${fetchNext}\n    }`;
  const steps = range(t.bk / 16).map((q) => `{\n      ${step(16 * q)}\n    }`);
  const mma = steps.toSpliced(fetchAfterFirstStep(v) ? 1 : 0, 0, fetchBlock).join('\n    ');
  // LoRA's term: r in chunks of up to BK staged into the tiles (stage_lora), each multiplied as k steps.
  const loraK = 16 * Math.min(Math.max(1, v.lora), t.bk / 16);
  const lora = range(Math.ceil((16 * v.lora) / loraK))
    .map((c) =>
      [
        `stage_lora(tid, row0, col0, ${c * loraK}u);`,
        'workgroupBarrier();',
        ...range(Math.min(loraK / 16, v.lora - (c * loraK) / 16)).map((q) => `{\n    ${step(16 * q).replaceAll('\n      ', '\n    ')}\n  }`),
        'workgroupBarrier();',
      ].join('\n  '),
    )
    .join('\n  ');
  // The epilogue stages `stages` result matrices a round (two: half the rounds, each two barriers),
  // then writes them out.
  const stages = stagesPerRound(v, t);
  const turns = stageTurns(v, t);
  const perTurn = threads / 32 / turns; // subgroups staging at once
  const area = turns === 1 ? 'sg' : `sg % ${perTurn}u`;
  const inTurn = (turn: number, lines: string[]) => (turns === 1 ? lines : [`if (sg / ${perTurn}u == ${turn}u) {`, ...lines.map((l) => `  ${l}`), '}']);
  const epilogue = range(cells.length / stages)
    .flatMap((r) => range(turns).map((turn) => [r, turn]))
    .map(([r, turn]) => {
      const round = cells.slice(r * stages, (r + 1) * stages);
      return [
        ...inTurn(turn, round.map(([i, j], s) => `subgroupMatrixStore<row_major>(&stage[${area}], ${256 * s}u, acc${i}_${j}, 16u);`)),
        'workgroupBarrier();',
        ...inTurn(turn, round.map(([i, j], s) => `write_stage${v.vecOut ? '4' : ''}(${area}, ${256 * s}u, lane, row0, sr + ${16 * i}u, col0 + sc + ${16 * j}u);`)),
        'workgroupBarrier();',
      ].join('\n  ');
    })
    .join('\n  ');
  const header = [
    'enable f16;',
    'enable subgroups;',
    'enable chromium_experimental_subgroup_matrix;',
    // Offsets come from the invocation index, uniform within each 32-wide subgroup (mmaF16 checks the width).
    'diagnostic(off, chromium.subgroup_matrix_uniformity);',
    `const TRANS_B = ${transB};`,
    `const ROWS_FASTEST = ${rowsFastest(transB)};`,
    `const BM = ${bm}u;`,
    `const BN = ${bn}u;`,
    `const BK = ${t.bk}u;`,
    `const SA = ${sa}u;`,
    `const SB = ${sb}u;`,
    `const B_SUB = ${bSub}u;`,
    `const TM = ${t.tm}u;`,
    `const TN = ${t.tn}u;`,
    `const SGC = ${t.sgc}u;`,
    `const THREADS = ${threads}u;`,
    `const PER = ${sharePer(v)}u;`,
    `const A_SPREAD = ${order.aSpread}u;`,
    `const A_ROT = ${order.aRot}u;`,
    `const B_ROT = ${order.bRot}u;`,
    `const LORA_K = ${loraK}u;`,
    `const STAGE = ${stages}u;`,
    '',
  ].join('\n');
  const body = template
    .replace('//{{ACC_DECL}}', cells.map(([i, j]) => `var acc${i}_${j} = subgroup_matrix_result<f32, 16, 16>();`).join('\n  '))
    .replace(
      '//{{FETCH_DECL}}',
      [...range(aFetches).map((i) => `var na${i}: Share;`), ...range(bFetches).map((i) => `var nb${i}: BShare;`)].join('\n  ') +
        `\n  {\n    let k0 = 0u;\n    ${fetchNext.replaceAll('\n      ', '\n    ')}\n  }`,
    )
    .replace('//{{STORE_NEXT}}', storeNext('  '))
    .replace('//{{MMA_STEP}}', mma)
    .replace(K_LOOP, constKLoop(v) ? K_LOOP_CONST : K_LOOP)
    .replace('//{{STORE_NEXT}}', storeNext('      '))
    .replace('//{{LORA}}', lora)
    .replace('//{{EPILOGUE}}', epilogue)
    .replace(STAGE_AREAS, `256u * STAGE>, THREADS / ${32 * turns}u>`);
  const bSource =
    kind === 'nf4'
      ? NF4_WGSL + nf4Source
      : denseSource.replace('//{{B_SHARE_SOURCE}}', fetchShare('b', v.vec, sharePer(v))).replace('//{{B_STORE}}', storeShare('tile_b', sharePer(v)));
  const spread = spreadRows(v, t);
  const shares = (text: string) => (spread ? text.replaceAll(SHARE_INDEX, 'let f = spread_rows(tid + i * THREADS);') : text);
  return (
    header +
    (spread ? SPREAD_ROWS_WGSL : '') +
    shares(bSource.replace('//{{B_STORE_INDEX}}', bStoreIndex(v, true))) +
    shares(body)
      .replace('//{{A_STORE_INDEX}}', aStoreIndex(true))
      .replace('//{{A_STORE}}', storeShare('tile_a', sharePer(v)))
      .replace('//{{A_SOURCE}}', aSource(v) + (v.lora ? `\n${loraSource}` : ''))
  );
}
