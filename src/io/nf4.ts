// NF4 (QLoRA 4-bit NormalFloat) exactly as bitsandbytes' CUDA kernels do it: the CPU reference,
// the reader of pre-quantized bnb-4bit checkpoints, and the one type (`Nf4Weight`) that the CPU
// and the GPU paths (src/engine/nf4.ts) share. specs/formats.md §3 has the format.
//
// Quantization (bnb csrc/kernels.cu kQuantizeBlockwise / kQuantizeBlockwiseSmall, dQuantizeNF4),
// for each block of `blocksize` consecutive elements of the row-major flattened tensor (a block can
// span rows):
//   absmax = max |x| (f32; NaN ignored, as CUDA's fmaxf ignores it)
//   r      = 1 / absmax in f32 (see RECIPROCAL below)
//   code   = the number of decision thresholds t with x * r > t, i.e. bnb's decision tree: every
//            comparison is strict, so a value exactly on a threshold gets the LOWER code. The
//            thresholds are bnb's decimal literals rounded to f32 by nvcc (decimal -> f32 directly),
//            which in 4 places are one ulp away from the f32 midpoints of the code values that
//            bnb's CPU/torch backends bucketize against (see NF4_THRESHOLD_BITS).
//   packing: element 2k in the HIGH nibble of byte k, 2k+1 in the low one; an odd element count
//            leaves a last byte whose low nibble is the code of a padding 0.0 (what bnb's kernel
//            stores: it quantizes zero-filled padding), normally 7.
// Special values, as bnb's CUDA kernels (built with --use_fast_math: flush-to-zero) produce them:
//   - subnormal inputs count as ±0 (FTZ);
//   - a block of zeros: absmax 0, r = +Inf, 0 * Inf = NaN -> every code 0 (bytes 0x00), and it
//     dequantizes to -1.0 * 0 = -0.0. (bnb's CPU/torch backends clamp absmax and give 0x77: codes 7.)
//   - NaN elements get code 0 (NaN fails every `>`), i.e. dequantize to -absmax;
//   - a block holding ±Inf: absmax Inf, r = 0, finite elements code 7 (0.0 * Inf = NaN when
//     dequantized), ±Inf code 0 (-> -Inf);
//   - a block of only NaN: absmax -FLT_MAX (fmaxf's starting value), codes 0;
//   - absmax > 2^126: 1/absmax is subnormal, flushed to 0: every finite element code 7.
//
// RECIPROCAL: this code uses the correctly rounded f32 reciprocal. bnb is built with
// --use_fast_math, so its `1.0f / absmax` is PTX rcp.approx.ftz.f32, which on an H200 differs from
// the correctly rounded value by one ulp for 13.2% of mantissas (measured over all 2^23), with no
// simple pattern (error up to ~1 ulp, not only near rounding ties), so it is not reproduced here.
// It moves a code only when x * r lies within an ulp of a threshold. Measured against bnb on an H200
// (2^28 elements each, N(0, 0.02), blocksizes 64 and 128): bf16 inputs 0 differing codes; f32
// inputs 3e-8 of codes differ (18 of 5.4e8), and 0 when the model takes the GPU's reciprocal
// instead, i.e. every other part of this model (thresholds, ties, FTZ, nibble order, absmax) is
// exactly bnb's. Real checkpoints are quantized from bf16 weights.
//
// Double quantization ("compress_statistics", bnb_4bit_use_double_quant): offset = mean(absmax);
// (absmax - offset) quantized blockwise to 8 bits (blocks of 256) with bnb's signed dynamic map;
// each 256-block keeps its own f32 absmax. Decoding, as bnb does it:
//   absmax[b] = f32(f32(map[q[b]] * nested_absmax[b / 256]) + offset)
// The decoded absmax (not the original) is what dequantization uses.
//
// No DOM, no Node modules: runs in a worker and in Node.

import { bf16ArrayToF32, bytesToF32LE, f16ArrayToF32, f32ArrayToBf16, f32ArrayToF16, f32Bits, f32FromBits } from './dtype.ts';

export class Nf4Error extends Error {
  override name = 'Nf4Error';
}

// ---------------------------------------------------------------------------------------------
// Tables

/** The 16 NF4 values (bnb `get_4bit_type('nf4')`), index = 4-bit code. Exactly f32 values. */
export const NF4_CODE: Float32Array = new Float32Array([
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
  -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
  0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
  0.7229568362236023, 1.0,
]);

/**
 * f32 bit patterns of the 15 thresholds of bnb's CUDA decision tree (dQuantizeNF4), ascending:
 * code = #{ i : x > threshold[i] }. They are the decimal literals of kernels.cu (e.g.
 * `0.8614784181118011f`) rounded straight to f32 as nvcc does. Parsing the literal as a double
 * first (Math.fround) gives a different f32 for 4 of them (-0.8480964, 0.1202553, 0.5016634,
 * 0.8614784): the literals are the double midpoints of two f32 code values, exact ties in f32, and
 * the decimal string's last digit decides the tie. Hence bit patterns, not literals.
 */
export const NF4_THRESHOLD_BITS: Uint32Array = new Uint32Array([
  0xbf591cd9, 0xbf1c5270, 0xbeeb8480, 0xbeadea76, 0xbe703cec, 0xbe0d38bc, 0xbd3a7871, 0x3d22faff,
  0x3df64863, 0x3e5067e0, 0x3e9582d4, 0x3ec753f9, 0x3f006d03, 0x3f248daf, 0x3f5c89d9,
]);

/** The thresholds as numbers (exact f32 values). */
export const NF4_THRESHOLDS: Float32Array = new Float32Array(new Uint32Array(NF4_THRESHOLD_BITS).buffer);

/** Blocksizes bnb accepts for 4-bit quantization. */
export const NF4_BLOCKSIZES = [32, 64, 128, 256, 512, 1024, 2048, 4096] as const;
/** Blocksizes bnb accepts for the 8-bit blockwise quantizer (the nested absmax). */
export const BLOCKWISE8_BLOCKSIZES = [64, 128, 256, 512, 1024, 2048, 4096] as const;
export const DEFAULT_NF4_BLOCKSIZE = 64;
/** Params4bit's blocksize for the nested (double) quantization of the absmax. */
export const DEFAULT_NESTED_BLOCKSIZE = 256;

const FLT_MAX = f32FromBits(0x7f7fffff);

/**
 * bnb's signed 8-bit dynamic map, `create_dynamic_map(signed=True, max_exponent_bits=7,
 * total_bits=8)`, computed in f32 as torch does it: for i = 0..6, n = 2^i + 1 points
 * `torch.linspace(0.1, 1, n, dtype=float32)`, the means of neighbours ((a + b) / 2 in f32), times
 * ±f32(10^(i-6)); plus 0 and 1; sorted. 256 values, [0] = -0.99296874, [127] = 0, [255] = 1.
 * Bit-identical to the map bnb 0.50 / torch 2.11 (x86-64, AVX-512) produced for the fixtures.
 * Checkpoints store the map they used (`nested_quant_map`) and readers use that one; this one only
 * serves quantizing here.
 */
export function createDynamicMap(): Float32Array {
  const f = Math.fround;
  const values: number[] = [];
  for (let i = 0; i < 7; i++) {
    const b = torchLinspaceF32(0.1, 1, 2 ** i + 1);
    const scale = f(10 ** (i - 6));
    for (let j = 0; j + 1 < b.length; j++) {
      const mean = f(f(b[j] + b[j + 1]) / 2);
      values.push(f(scale * mean), f(-scale * mean));
    }
  }
  values.push(0, 1);
  return new Float32Array(values.sort((a, b) => a - b));
}

/**
 * torch.linspace(start, end, n, dtype=float32) on the CPU, as measured on torch 2.11: step =
 * f32((end - start) / (n - 1)), element i = `start + step * i` for i < n/2 and
 * `end - step * (n - 1 - i)` above, each with ONE rounding (the compiled kernel fuses the
 * multiply-add). Double precision holds step * i + start exactly here, so one Math.fround is that
 * single rounding. (Two roundings differ from torch in 1 of 9 points already at n = 9.)
 */
export function torchLinspaceF32(start: number, end: number, n: number): Float32Array {
  const f = Math.fround;
  const s = f(start);
  const e = f(end);
  const step = f(f(e - s) / (n - 1));
  const half = Math.floor(n / 2);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = i < half ? f(s + step * i) : f(e - step * (n - i - 1));
  return out;
}

// ---------------------------------------------------------------------------------------------
// The weight type shared by the CPU and GPU paths

/** The torch dtype the quantized tensor had (and dequantizes back to). */
export type Nf4SourceDtype = 'bfloat16' | 'float16' | 'float32';

/** The double-quantized (nested) form of the per-block absmax. */
export interface Nf4Nested {
  /** One 8-bit index into `code` per NF4 block (bnb `weight.absmax`, U8). */
  qabsmax: Uint8Array;
  /** f32 absmax of each group of `blocksize` quantized values (bnb `weight.nested_absmax`). */
  absmax: Float32Array;
  /** The 256-entry map `qabsmax` indexes (bnb `weight.nested_quant_map`). */
  code: Float32Array;
  /** 256 in every bnb checkpoint. */
  blocksize: number;
  /** The mean subtracted before quantizing (an f32 value; bnb `nested_offset`). */
  offset: number;
}

export interface Nf4Weight {
  /** The original tensor's shape, [rows, cols] for a linear (torch `[out, in]`). */
  shape: number[];
  /** Elements: the product of `shape`. */
  numel: number;
  /** Elements per absmax block of the flattened tensor. */
  blocksize: number;
  /** bnb's bytes: ceil(numel / 2), element 2k in the high nibble of byte k. */
  packed: Uint8Array;
  /**
   * f32 absmax per block, ceil(numel / blocksize) values: what dequantization multiplies by.
   * With double quantization it is the value decoded from `nested` (not the original max).
   */
  absmax: Float32Array;
  /** Present when the absmax is double-quantized (compress_statistics). */
  nested?: Nf4Nested;
  /** The dtype of the tensor that was quantized (quant_state.dtype). */
  dtype: Nf4SourceDtype;
}

export function nf4BlockCount(numel: number, blocksize: number): number {
  return Math.ceil(numel / blocksize);
}

export function nf4PackedBytes(numel: number): number {
  return Math.ceil(numel / 2);
}

// ---------------------------------------------------------------------------------------------
// Scalar pieces (exported for the tests and the GPU wrapper's checks)

/** The f32 value of `x` with a subnormal flushed to a zero of the same sign (CUDA -ftz). */
export function ftz(x: number): number {
  const b = f32Bits(x);
  return (b & 0x7f800000) === 0 ? ((b & 0x80000000) !== 0 ? -0 : 0) : Math.fround(x);
}

/**
 * 1 / absmax in f32 as the quantizer uses it: correctly rounded (an f64 quotient rounded to f32
 * is: 1/m is never within 2^-53 of an f32 midpoint), 1/±0 = ±Inf, 1/Inf = 0, and a subnormal
 * result flushed to zero.
 */
export function reciprocalF32(absmax: number): number {
  return ftz(Math.fround(1 / absmax));
}

/** The NF4 code of a scaled value s = x * (1 / absmax): bnb's decision tree. NaN -> 0. */
export function nf4Encode(s: number): number {
  const t = NF4_THRESHOLDS;
  let code = 0;
  for (let i = 0; i < 15; i++) if (s > t[i]) code++;
  return code;
}

/**
 * Max |x| over a block as bnb's kernel computes it: fmaxf from -FLT_MAX, so NaN is ignored; a
 * partial last block's zero padding takes part (it only matters when every real element is NaN).
 * Inputs must already be FTZ'd.
 */
function blockAbsmax(x: ArrayLike<number>, start: number, end: number, padded: boolean): number {
  let m = -FLT_MAX;
  for (let i = start; i < end; i++) {
    const a = Math.abs(x[i]);
    if (a > m) m = a; // NaN compares false: ignored, as fmaxf does
  }
  if (padded && m < 0) m = 0;
  return m;
}

// ---------------------------------------------------------------------------------------------
// Quantize / dequantize

export interface Nf4QuantizeOptions {
  /** Elements per block (bnb: 32..4096, powers of two). Default 64. */
  blocksize?: number;
  /** Double-quantize the absmax (bnb compress_statistics / bnb_4bit_use_double_quant). */
  doubleQuant?: boolean;
  /** Shape to record (default [values.length]); its product must be values.length. */
  shape?: number[];
  /** The dtype the values came from (default 'float32'): recorded, and used to dequantize. */
  dtype?: Nf4SourceDtype;
  /** Options of the double quantization. */
  nested?: CompressAbsmaxOptions;
}

/**
 * Quantizes f32 values (bf16/f16 weights converted exactly to f32 first) to NF4 as bnb's CUDA
 * kernel does: same bytes, same absmax. With `doubleQuant` the absmax is compressed as bnb does
 * (see compressAbsmax) and `absmax` holds the decoded values dequantization uses.
 */
export function quantizeNf4(values: Float32Array, opts: Nf4QuantizeOptions = {}): Nf4Weight {
  const blocksize = checkBlocksize(opts.blocksize ?? DEFAULT_NF4_BLOCKSIZE, NF4_BLOCKSIZES, '4-bit');
  const n = values.length;
  const shape = opts.shape ?? [n];
  if (shapeNumel(shape) !== n) throw new Nf4Error(`quantizeNf4: shape [${shape}] does not hold ${n} values`);
  const nBlocks = nf4BlockCount(n, blocksize);
  const packed = new Uint8Array(nf4PackedBytes(n));
  const absmax = new Float32Array(nBlocks);
  const x = new Float32Array(blocksize + 1);
  for (let b = 0; b < nBlocks; b++) {
    const start = b * blocksize;
    const end = Math.min(n, start + blocksize);
    const len = end - start;
    for (let i = 0; i < len; i++) x[i] = ftz(values[start + i]);
    const m = blockAbsmax(x, 0, len, len < blocksize);
    absmax[b] = m;
    const r = reciprocalF32(m);
    // The padding element that shares the last byte with an odd element count is a 0.0.
    const count = len + (len & 1);
    if (len & 1) x[len] = 0;
    for (let i = 0; i < count; i += 2) {
      const hi = nf4Encode(Math.fround(x[i] * r));
      const lo = nf4Encode(Math.fround(x[i + 1] * r));
      packed[(start + i) >> 1] = (hi << 4) | lo;
    }
  }
  const w: Nf4Weight = { shape: [...shape], numel: n, blocksize, packed, absmax, dtype: opts.dtype ?? 'float32' };
  if (opts.doubleQuant) {
    w.nested = compressAbsmax(absmax, opts.nested);
    w.absmax = decompressAbsmax(w.nested, nBlocks);
  }
  return w;
}

/** The 4-bit code of flat element `e` (bnb nibble order: even elements in the high nibble). */
export function nf4CodeAt(packed: Uint8Array, e: number): number {
  const byte = packed[e >> 1];
  return e & 1 ? byte & 0xf : byte >> 4;
}

/**
 * Dequantizes to f32: code value * absmax of the block, one f32 rounding, as bnb's kernel computes
 * it before storing in the tensor's dtype. `toSourceDtype` (default false) also rounds each value
 * to `w.dtype` (bf16/f16, round to nearest even) as bnb's dequantize_4bit output would hold it.
 */
export function dequantizeNf4(w: Nf4Weight, opts: { toSourceDtype?: boolean } = {}): Float32Array {
  checkWeight(w);
  const out = new Float32Array(w.numel);
  const bs = w.blocksize;
  for (let e = 0; e < w.numel; e++) out[e] = Math.fround(NF4_CODE[nf4CodeAt(w.packed, e)] * w.absmax[Math.floor(e / bs)]);
  if (opts.toSourceDtype) return roundToDtype(out, w.dtype);
  return out;
}

/** f32 values rounded to bf16 / f16 (nearest even) and back; f32 unchanged. */
export function roundToDtype(values: Float32Array, dtype: Nf4SourceDtype): Float32Array {
  if (dtype === 'bfloat16') return bf16ArrayToF32(f32ArrayToBf16(values));
  if (dtype === 'float16') return f16ArrayToF32(f32ArrayToF16(values));
  return values;
}

// ---------------------------------------------------------------------------------------------
// 8-bit blockwise quantization (double quant of the absmax)

/**
 * The 8-bit index of a scaled value in a sorted 256-entry map, as bnb's dQuantize<0> finds it:
 * a binary search from 127 in steps 64..1 (`x > map[pivot]` goes up), then the nearer of the last
 * pivot and its bracketing neighbour by the f32 midpoint; a value exactly on the midpoint stays at
 * the last pivot. NaN -> 0.
 */
export function blockwise8Encode(map: Float32Array, x: number): number {
  const f = Math.fround;
  let pivot = 127;
  let upperPivot = 255;
  let lowerPivot = 0;
  let lower = -1;
  let upper = 1;
  let val = map[pivot];
  for (let i = 64; i > 0; i >>= 1) {
    if (x > val) {
      lowerPivot = pivot;
      lower = val;
      pivot += i;
    } else {
      upperPivot = pivot;
      upper = val;
      pivot -= i;
    }
    val = map[pivot];
  }
  if (upperPivot === 255) upper = map[upperPivot];
  if (lowerPivot === 0) lower = map[lowerPivot];
  if (x > val) {
    const mid = f(f(upper + val) * 0.5);
    return x > mid ? upperPivot : pivot;
  }
  const mid = f(f(lower + val) * 0.5);
  return x < mid ? lowerPivot : pivot;
}

/** bnb quantize_blockwise (CUDA, no stochastic rounding): an index per value, an absmax per block. */
export function quantizeBlockwise8(
  values: Float32Array,
  map: Float32Array,
  blocksize: number,
): { q: Uint8Array; absmax: Float32Array } {
  checkBlocksize(blocksize, BLOCKWISE8_BLOCKSIZES, '8-bit blockwise');
  if (map.length !== 256) throw new Nf4Error(`8-bit map has ${map.length} entries, expected 256`);
  const n = values.length;
  const nBlocks = Math.ceil(n / blocksize);
  const q = new Uint8Array(n);
  const absmax = new Float32Array(nBlocks);
  const x = new Float32Array(blocksize);
  for (let b = 0; b < nBlocks; b++) {
    const start = b * blocksize;
    const len = Math.min(n, start + blocksize) - start;
    for (let i = 0; i < len; i++) x[i] = ftz(values[start + i]);
    const m = blockAbsmax(x, 0, len, len < blocksize);
    absmax[b] = m;
    const r = reciprocalF32(m);
    for (let i = 0; i < len; i++) q[start + i] = blockwise8Encode(map, Math.fround(x[i] * r));
  }
  return { q, absmax };
}

export interface CompressAbsmaxOptions {
  /** Values per nested block (bnb: 256). */
  blocksize?: number;
  /** The 256-entry map (default createDynamicMap()). */
  code?: Float32Array;
  /**
   * The offset to subtract (default: the mean of `absmax`, summed in f64 and rounded to f32).
   * bnb takes torch's CUDA `mean()`, whose f32 reduction order can move the last bit; pass a
   * checkpoint's `nested_offset` to reproduce its bytes exactly (measured: within 1 ulp of torch).
   */
  offset?: number;
}

/** bnb's double quantization of the per-block absmax. */
export function compressAbsmax(absmax: Float32Array, opts: CompressAbsmaxOptions = {}): Nf4Nested {
  const blocksize = opts.blocksize ?? DEFAULT_NESTED_BLOCKSIZE;
  const code = opts.code ?? createDynamicMap();
  let offset: number;
  if (opts.offset !== undefined) {
    offset = Math.fround(opts.offset);
  } else {
    let sum = 0;
    for (let i = 0; i < absmax.length; i++) sum += absmax[i];
    offset = Math.fround(sum / absmax.length);
  }
  const centred = new Float32Array(absmax.length);
  for (let i = 0; i < absmax.length; i++) centred[i] = absmax[i] - offset; // f32 store rounds once
  const { q, absmax: nestedAbsmax } = quantizeBlockwise8(centred, code, blocksize);
  return { qabsmax: q, absmax: nestedAbsmax, code, blocksize, offset };
}

/** Decodes nested absmax exactly as bnb does (see the header). */
export function decompressAbsmax(nested: Nf4Nested, nBlocks: number): Float32Array {
  const { qabsmax, absmax, code, blocksize, offset } = nested;
  if (qabsmax.length !== nBlocks) throw new Nf4Error(`nested absmax: ${qabsmax.length} values for ${nBlocks} blocks`);
  if (absmax.length !== Math.ceil(nBlocks / blocksize)) {
    throw new Nf4Error(`nested absmax: ${absmax.length} nested blocks for ${nBlocks} values of blocksize ${blocksize}`);
  }
  const f = Math.fround;
  const out = new Float32Array(nBlocks);
  for (let b = 0; b < nBlocks; b++) out[b] = f(f(code[qabsmax[b]] * absmax[Math.floor(b / blocksize)]) + offset);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Pre-quantized bnb-4bit checkpoints

/** A tensor as read from safetensors: its dtype string (U8, F32, ...), shape and raw LE bytes. */
export interface RawTensor {
  dtype: string;
  shape: readonly number[];
  data: Uint8Array;
}

/** The quant-state JSON (`weight.quant_state.bitsandbytes__nf4`), as bnb writes it. */
export interface BnbQuantStateJson {
  quant_type: string;
  blocksize: number;
  dtype: string;
  shape: number[];
  nested_blocksize?: number;
  nested_dtype?: string;
  nested_offset?: number;
}

const QUANT_STATE_PREFIX = 'weight.quant_state.bitsandbytes__';

/** Tensor names (relative to the module prefix) a bnb 4-bit linear may have. */
export const BNB_4BIT_SUFFIXES = [
  'weight',
  'weight.absmax',
  'weight.quant_map',
  'weight.nested_absmax',
  'weight.nested_quant_map',
  'weight.quant_state.bitsandbytes__nf4',
  'weight.quant_state.bitsandbytes__fp4',
] as const;

/** True when `names` holds a bnb 4-bit quant state for the module `prefix` (e.g. '...q_proj.'). */
export function isBnb4bit(names: Iterable<string>, prefix = ''): boolean {
  for (const n of names) if (n.startsWith(prefix + QUANT_STATE_PREFIX)) return true;
  return false;
}

/**
 * Reads one bnb 4-bit linear from its checkpoint tensors (`weight`, `weight.absmax`,
 * `weight.quant_map`, `weight.nested_absmax`, `weight.nested_quant_map`,
 * `weight.quant_state.bitsandbytes__nf4`), keyed as `prefix + suffix` (prefix e.g.
 * 'model.layers.0.self_attn.q_proj.', default ''). Checks every size against the quant state and
 * decodes nested absmax; throws an Nf4Error naming the tensor otherwise.
 */
export function parseBnbQuantState(tensors: Record<string, RawTensor>, prefix = ''): Nf4Weight {
  const where = prefix ? `${prefix.replace(/\.$/, '')}: ` : '';
  const fail = (msg: string): never => {
    throw new Nf4Error(where + msg);
  };
  const get = (suffix: string): RawTensor | undefined => tensors[prefix + suffix];
  const need = (suffix: string): RawTensor => get(suffix) ?? fail(`missing tensor ${prefix + suffix}`);

  const stateKeys = Object.keys(tensors).filter((k) => k.startsWith(prefix + QUANT_STATE_PREFIX));
  if (stateKeys.length === 0) fail(`no ${prefix}${QUANT_STATE_PREFIX}nf4 tensor: not a bitsandbytes 4-bit weight`);
  if (stateKeys.length > 1) fail(`several quant states: ${stateKeys.join(', ')}`);
  const kind = stateKeys[0].slice((prefix + QUANT_STATE_PREFIX).length);
  if (kind === 'fp4') fail('fp4 checkpoints are not supported, use an nf4 one');
  if (kind !== 'nf4') fail(`unknown bitsandbytes quant type '${kind}' (only nf4 is supported)`);

  const stateTensor = tensors[stateKeys[0]];
  if (stateTensor.dtype !== 'U8') fail(`${stateKeys[0]} has dtype ${stateTensor.dtype}, expected U8 (JSON bytes)`);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(stateTensor.data));
  } catch (e) {
    fail(`${stateKeys[0]} is not valid JSON: ${(e as Error).message}`);
  }
  const state = checkStateJson(json, fail);
  if (state.quant_type === 'fp4') fail('fp4 checkpoints are not supported, use an nf4 one');
  if (state.quant_type !== 'nf4') fail(`quant_type '${state.quant_type}' is not supported (only nf4)`);

  const numel = shapeNumel(state.shape);
  const blocksize = state.blocksize;
  const nBlocks = nf4BlockCount(numel, blocksize);

  const weight = need('weight');
  const wantBytes = nf4PackedBytes(numel);
  // bnb stores U8 [(n+1)/2, 1]; other quant_storage dtypes (e.g. bf16 for FSDP) hold the same bytes.
  if (weight.data.length !== wantBytes && !(weight.dtype !== 'U8' && weight.data.length === roundUp(wantBytes, dtypeSize(weight.dtype)))) {
    fail(`${prefix}weight holds ${weight.data.length} bytes (${weight.dtype} [${weight.shape}]); shape [${state.shape}] needs ${wantBytes}`);
  }
  const packed = weight.data.slice(0, wantBytes);

  const quantMap = need('weight.quant_map');
  const map = readF32(quantMap, `${prefix}weight.quant_map`, 16, fail);
  for (let i = 0; i < 16; i++) {
    // bnb's kernels ignore the stored map and use their own table; a different one is a red flag.
    if (!(Math.abs(map[i] - NF4_CODE[i]) <= 1e-6)) fail(`${prefix}weight.quant_map is not the NF4 table (entry ${i} = ${map[i]})`);
  }

  const absmaxT = need('weight.absmax');
  const nestedAbsmaxT = get('weight.nested_absmax');
  const w: Nf4Weight = { shape: [...state.shape], numel, blocksize, packed, absmax: new Float32Array(0), dtype: state.dtype as Nf4SourceDtype };
  if (nestedAbsmaxT === undefined) {
    if (state.nested_offset !== undefined) fail(`quant state has nested_offset but ${prefix}weight.nested_absmax is missing`);
    w.absmax = readF32(absmaxT, `${prefix}weight.absmax`, nBlocks, fail);
  } else {
    const nb = state.nested_blocksize;
    if (nb === undefined || !(BLOCKWISE8_BLOCKSIZES as readonly number[]).includes(nb)) fail(`nested_blocksize ${nb} is not a bitsandbytes 8-bit blocksize`);
    if (typeof state.nested_offset !== 'number' || !Number.isFinite(state.nested_offset)) fail(`nested_offset ${state.nested_offset} is not a finite number`);
    if (state.nested_dtype !== undefined && state.nested_dtype !== 'float32') fail(`nested_dtype '${state.nested_dtype}' is not supported (float32)`);
    if (absmaxT.dtype !== 'U8') fail(`${prefix}weight.absmax has dtype ${absmaxT.dtype}; with double quantization it must be U8`);
    if (absmaxT.data.length !== nBlocks) fail(`${prefix}weight.absmax has ${absmaxT.data.length} values, expected ${nBlocks} (${numel} / ${blocksize})`);
    const nestedBlocks = Math.ceil(nBlocks / nb!);
    const nested: Nf4Nested = {
      qabsmax: absmaxT.data.slice(),
      absmax: readF32(nestedAbsmaxT, `${prefix}weight.nested_absmax`, nestedBlocks, fail),
      code: readF32(need('weight.nested_quant_map'), `${prefix}weight.nested_quant_map`, 256, fail),
      blocksize: nb!,
      offset: Math.fround(state.nested_offset!),
    };
    w.nested = nested;
    w.absmax = decompressAbsmax(nested, nBlocks);
  }
  return w;
}

function checkStateJson(json: unknown, fail: (msg: string) => never): BnbQuantStateJson {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail('quant state JSON is not an object');
  const s = json as Record<string, unknown>;
  if (typeof s.quant_type !== 'string') fail('quant state has no quant_type');
  if (s.quant_type === 'fp4') fail('fp4 checkpoints are not supported, use an nf4 one');
  if (!Number.isInteger(s.blocksize) || !(NF4_BLOCKSIZES as readonly number[]).includes(s.blocksize as number)) {
    fail(`quant state blocksize ${JSON.stringify(s.blocksize)} is not one of ${NF4_BLOCKSIZES.join(', ')}`);
  }
  if (s.dtype !== 'bfloat16' && s.dtype !== 'float16' && s.dtype !== 'float32') {
    fail(`quant state dtype ${JSON.stringify(s.dtype)} is not bfloat16, float16 or float32`);
  }
  if (!Array.isArray(s.shape) || s.shape.length === 0 || !s.shape.every((d) => Number.isInteger(d) && d > 0)) {
    fail(`quant state shape ${JSON.stringify(s.shape)} is not a list of positive integers`);
  }
  return s as unknown as BnbQuantStateJson;
}

function readF32(t: RawTensor, name: string, count: number, fail: (msg: string) => never): Float32Array {
  if (t.dtype !== 'F32') fail(`${name} has dtype ${t.dtype}, expected F32`);
  if (t.data.length !== count * 4) fail(`${name} has ${t.data.length / 4} values, expected ${count}`);
  return bytesToF32LE(t.data);
}

function dtypeSize(dtype: string): number {
  return /64/.test(dtype) ? 8 : /32/.test(dtype) ? 4 : /16/.test(dtype) ? 2 : 1;
}

function roundUp(n: number, m: number): number {
  return Math.ceil(n / m) * m;
}

// ---------------------------------------------------------------------------------------------
// Checks

function checkBlocksize(bs: number, allowed: readonly number[], what: string): number {
  if (!allowed.includes(bs)) throw new Nf4Error(`${what} blocksize ${bs} is not one of ${allowed.join(', ')}`);
  return bs;
}

function shapeNumel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Throws unless the weight's arrays have the sizes its shape and blocksize call for. */
export function checkWeight(w: Nf4Weight): void {
  checkBlocksize(w.blocksize, NF4_BLOCKSIZES, '4-bit');
  if (shapeNumel(w.shape) !== w.numel) throw new Nf4Error(`NF4 weight: shape [${w.shape}] does not match numel ${w.numel}`);
  if (w.packed.length !== nf4PackedBytes(w.numel)) throw new Nf4Error(`NF4 weight: ${w.packed.length} packed bytes for ${w.numel} values`);
  const nb = nf4BlockCount(w.numel, w.blocksize);
  if (w.absmax.length !== nb) throw new Nf4Error(`NF4 weight: ${w.absmax.length} absmax values for ${nb} blocks`);
}
