// Fused NF4 dequantize-matmul (shaders/nf4-matmul.wgsl): the frozen base weights of QLoRA stay
// NF4 in GPU memory and are dequantized tile by tile in registers and workgroup memory.
//   forward:  y[M, N] = x[M, K] · dequant(W)ᵀ (+ bias)   W [N, K] (nn.Linear's [out, in])
//   backward: dx[M, K] = dy[M, N] · dequant(W)           (the gradient w.r.t. the layer input)
// A forward of up to NF4_GEMV_MAX_ROWS rows (decode) runs the GEMV of nf4-gemv.ts instead; on a
// device with f16 subgroup matrices the tiled product runs on the tensor cores (matmul-mma.ts).
// Reference: reference/nf4-matmul.ts (dequantizeNf4 on the CPU, then a float64 matmul).
import { expectShape, createTensor, numel, type DType, type Tensor } from './tensor.ts';
import { checkBindingSizes, submitPass, withResidualType, type Kernels } from './kernels.ts';
import { NF4_WGSL, type Nf4GpuWeight } from './nf4.ts';
import { encodeMmaMatmul, mmaApplies, type F16Rows, type MmaLora } from './matmul-mma.ts';
import { encodeNf4Gemv, NF4_GEMV_MAX_ROWS } from './nf4-gemv.ts';
import tile128 from '../../shaders/tile128.wgsl?raw';
import source from '../../shaders/nf4-matmul.wgsl?raw';

const TILE = 128;
/** Rows (tokens) up to which the forward runs the GEMV kernel (decode, nf4-gemv.ts) instead of the tiled one. */
export { NF4_GEMV_MAX_ROWS };

export interface Nf4MatmulOptions {
  /** f32 [N], added to every row (Qwen2's q/k/v bias). Forward only. */
  bias?: Tensor;
  /** out += result instead of out = result (e.g. dx of the base plus dx of LoRA). */
  accumulate?: boolean;
  /** Use the tensor-core GEMM (matmul-mma.ts) for the tiled product where the device has it (default true). */
  tensorCores?: boolean;
  /** Force a kernel: 'tiled' or 'gemv' (forward only, at most NF4_GEMV_MAX_ROWS rows). Default: by rows. */
  kernel?: 'tiled' | 'gemv';
  /** LoRA's term added by the tensor-core kernel (where nf4TakesLora says it runs). */
  lora?: MmaLora;
  /** x's f16 rows for the tensor-core kernel, recorded once for the products of one x (encodeMmaRows). */
  rows?: F16Rows;
}

/** Whether a product of `rows` rows by `w` runs on the tensor cores, which add LoRA's term themselves (`lora`). */
export function nf4TakesLora(kernels: Kernels, rows: number, w: Nf4GpuWeight): boolean {
  return rows > NF4_GEMV_MAX_ROWS && mmaApplies(kernels.gpu.info, { kind: 'nf4', w });
}

/**
 * Records y = x · dequant(W)ᵀ (+ bias) into `pass`. x is [..., K] in the storage type; y is
 * [..., N] in the storage type or f32; W is the NF4 weight [N, K]. f32 accumulation.
 */
export function encodeNf4Matmul(
  kernels: Kernels,
  pass: GPUComputePassEncoder,
  x: Tensor,
  w: Nf4GpuWeight,
  y: Tensor,
  opts: Nf4MatmulOptions = {},
): void {
  const [n, k] = weightShape(w);
  const m = rowsOf('nf4 matmul', x, k, 'x');
  expectShape('nf4 matmul', y, [...x.shape.slice(0, -1), n], 'y');
  if (opts.bias) {
    expectShape('nf4 matmul', opts.bias, [n], 'bias');
    if (opts.bias.dtype !== 'f32') throw new Error(`nf4 matmul: bias must be f32, not ${opts.bias.dtype}`);
  }
  const gemv = opts.kernel ? opts.kernel === 'gemv' : m <= NF4_GEMV_MAX_ROWS;
  if (gemv && m > NF4_GEMV_MAX_ROWS) throw new Error(`nf4 matmul: the gemv kernel takes at most ${NF4_GEMV_MAX_ROWS} rows, not ${m}`);
  dispatch(kernels, pass, x, w, y, opts, { m, nc: n, ki: k, trans: true, gemv });
}

/**
 * Records dx = dy · dequant(W) into `pass` (the backward of encodeNf4Matmul w.r.t. x). dy is
 * [..., N] in the storage type; dx is [..., K] in the storage type or f32.
 */
export function encodeNf4MatmulBackward(
  kernels: Kernels,
  pass: GPUComputePassEncoder,
  dy: Tensor,
  w: Nf4GpuWeight,
  dx: Tensor,
  opts: Pick<Nf4MatmulOptions, 'accumulate' | 'tensorCores' | 'lora'> = {},
): void {
  const [n, k] = weightShape(w);
  const m = rowsOf('nf4 matmul backward', dy, n, 'dy');
  expectShape('nf4 matmul backward', dx, [...dy.shape.slice(0, -1), k], 'dx');
  dispatch(kernels, pass, dy, w, dx, opts, { m, nc: k, ki: n, trans: false, gemv: false });
}

/** Allocates y ([M, N], storage type of x unless `outDtype`) and computes x · dequant(W)ᵀ, submitted at once. */
export function nf4Matmul(kernels: Kernels, x: Tensor, w: Nf4GpuWeight, opts: Nf4MatmulOptions & { outDtype?: DType } = {}): Tensor {
  const y = createTensor(kernels.device, [...x.shape.slice(0, -1), w.shape[0]], opts.outDtype ?? x.dtype, 'nf4matmul.y');
  submitPass(kernels, (pass) => encodeNf4Matmul(kernels, pass, x, w, y, opts));
  return y;
}

/** Allocates dx and computes dy · dequant(W), submitted at once. */
export function nf4MatmulBackward(kernels: Kernels, dy: Tensor, w: Nf4GpuWeight, opts: { outDtype?: DType } = {}): Tensor {
  const dx = createTensor(kernels.device, [...dy.shape.slice(0, -1), w.shape[1]], opts.outDtype ?? dy.dtype, 'nf4matmul.dx');
  submitPass(kernels, (pass) => encodeNf4MatmulBackward(kernels, pass, dy, w, dx));
  return dx;
}

function weightShape(w: Nf4GpuWeight): [number, number] {
  if (w.shape.length !== 2) throw new Error(`nf4 matmul: the weight has shape [${w.shape}], expected [out, in]`);
  if (w.numel >= 2 ** 32) throw new Error(`nf4 matmul: a weight of ${w.numel} elements needs 64-bit indices`);
  return [w.shape[0], w.shape[1]];
}

function rowsOf(kernel: string, t: Tensor, width: number, what: string): number {
  if (t.shape.length < 1 || t.shape[t.shape.length - 1] !== width) {
    throw new Error(`${kernel}: ${what} has shape [${t.shape}], expected [..., ${width}]`);
  }
  return numel(t.shape) / width;
}

function dispatch(
  kernels: Kernels,
  pass: GPUComputePassEncoder,
  a: Tensor,
  w: Nf4GpuWeight,
  out: Tensor,
  opts: Nf4MatmulOptions,
  s: { m: number; nc: number; ki: number; trans: boolean; gemv: boolean },
): void {
  if ((opts.lora || opts.rows) && (s.gemv || opts.tensorCores === false || !mmaApplies(kernels.gpu.info, { kind: 'nf4', w }))) {
    throw new Error("nf4 matmul: only the tensor-core kernel adds a LoRA term or takes x's f16 rows (nf4TakesLora)");
  }
  if (s.gemv) {
    encodeNf4Gemv(kernels, pass, a, w, out, { bias: opts.bias, accumulate: opts.accumulate });
    return;
  }
  if (out.buffer === a.buffer) throw new Error('nf4 matmul: the output must not be the input');
  checkBindingSizes(kernels, 'nf4 matmul', [
    ['input', a.buffer],
    ['output', out.buffer],
    ['weight words', w.words],
  ]);
  const operand = { kind: 'nf4', w } as const;
  if (opts.tensorCores !== false && mmaApplies(kernels.gpu.info, operand)) {
    encodeMmaMatmul(kernels, pass, a, operand, out, { m: s.m, nc: s.nc, ki: s.ki, transB: s.trans, bias: opts.bias, accumulate: opts.accumulate, lora: opts.lora, rows: opts.rows });
    return;
  }
  const spec = withResidualType('nf4-matmul', NF4_WGSL + tile128 + source, a.dtype, out.dtype);
  const kernel = kernels.get({ ...spec, dtype: a.dtype, constants: { TRANS_W: s.trans } });
  const params = {
    m: s.m,
    nc: s.nc,
    ki: s.ki,
    wc: w.shape[1],
    bs_shift: Math.log2(w.blocksize),
    aligned: w.shape[1] % 8 === 0 ? 1 : 0,
    has_bias: opts.bias ? 1 : 0,
    accumulate: opts.accumulate ? 1 : 0,
  };
  if (!Number.isInteger(params.bs_shift)) throw new Error(`nf4 matmul: blocksize ${w.blocksize} is not a power of two`);
  // Without a bias the (read-only) absmax buffer stands in for the bias binding; it is never read.
  const buffers = [a.buffer, w.words, w.absmax, opts.bias?.buffer ?? w.absmax, out.buffer];
  kernels.dispatch(pass, kernel, buffers, params, [Math.ceil(s.nc / TILE), Math.ceil(s.m / TILE)]);
}
