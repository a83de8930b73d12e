// References for shaders/adamw.wgsl and shaders/adamw8bit.wgsl.
//   adamwStepRef      torch.optim.AdamW's step in float64 (single-tensor path, same order of
//                     operations: decay, lerp of m, v, bias-corrected update).
//   quantize8Ref /    the 8-bit state quantizer's exact rule (see the shader's header): the GPU
//   dequantize8Ref    must match these bit for bit.
//   adamw8StepRef     one 8-bit step: dequantize (exact, f32), update in float64, round the new
//                     states to f32, requantize (exact rule). The GPU updates in f32, so a code
//                     can differ by one where a state lies within an f32 rounding of a midpoint.
import { ADAMW8_BLOCK, dynamicMapMidpoints, type AdamwConfig } from '../adamw.ts';

/**
 * One AdamW step (1-based `step`) in place, in float64. With `f32Tensors`, as torch runs it on
 * f32 tensors: the step's scalars (computed in double, as torch does in Python) are rounded to
 * f32, since torch's tensor-scalar ops compute in the tensor's type, and the result of each of
 * torch's tensor ops is rounded to f32 where torch stores it (param.mul_, exp_avg.lerp_,
 * exp_avg_sq.mul_ and .addcmul_, sqrt, the division and add_ of denom, param.addcdiv_); the
 * arithmetic inside one op stays float64. Without it, everything is float64.
 */
export function adamwStepRef(
  param: Float64Array,
  grad: ArrayLike<number>,
  m: Float64Array,
  v: Float64Array,
  step: number,
  cfg: AdamwConfig,
  opts: { f32Tensors?: boolean } = {},
): void {
  const { beta1, beta2, eps, wd } = hyper(cfg);
  const r = opts.f32Tensors ? Math.fround : (x: number) => x;
  const decay = r(1 - cfg.lr * wd);
  const b2 = r(beta2);
  const omb1 = r(1 - beta1);
  const omb2 = r(1 - beta2);
  const e = r(eps);
  const stepSize = r(cfg.lr / (1 - beta1 ** step));
  const bc2Sqrt = r(Math.sqrt(1 - beta2 ** step));
  for (let i = 0; i < param.length; i++) {
    const g = grad[i];
    const p = r(param[i] * decay); // param.mul_(1 - lr · wd)
    m[i] = r(m[i] + omb1 * (g - m[i])); // exp_avg.lerp_(grad, 1 - β1)
    v[i] = r(r(v[i] * b2) + omb2 * g * g); // exp_avg_sq.mul_(β2).addcmul_(grad, grad, 1 - β2)
    const denom = r(r(r(Math.sqrt(v[i])) / bc2Sqrt) + e); // (exp_avg_sq.sqrt() / bc2_sqrt).add_(eps)
    param[i] = r(p - stepSize * (m[i] / denom)); // param.addcdiv_(exp_avg, denom, -step_size)
  }
}

function hyper(cfg: AdamwConfig): { beta1: number; beta2: number; eps: number; wd: number } {
  return { beta1: cfg.beta1 ?? 0.9, beta2: cfg.beta2 ?? 0.999, eps: cfg.eps ?? 1e-8, wd: cfg.weightDecay ?? 0.01 };
}

export interface Quantized8 {
  /** One code per element. */
  codes: Uint8Array;
  /** One absmax per block of 256. */
  absmax: Float32Array;
}

/**
 * Blockwise 8-bit quantization of f32 values with a sorted 256-entry map: absmax = max |x| per
 * block of 256; code = #{ i : x >= f32(mid_i · absmax) } (mid = dynamicMapMidpoints(map)), the
 * code of 0 when absmax = 0.
 */
export function quantize8Ref(values: ArrayLike<number>, map: Float32Array): Quantized8 {
  const f = Math.fround;
  const mid = dynamicMapMidpoints(map);
  const zero = map.indexOf(0);
  const n = values.length;
  const blocks = Math.ceil(n / ADAMW8_BLOCK);
  const codes = new Uint8Array(n);
  const absmax = new Float32Array(blocks);
  const thr = new Float64Array(mid.length);
  for (let b = 0; b < blocks; b++) {
    const start = b * ADAMW8_BLOCK;
    const end = Math.min(n, start + ADAMW8_BLOCK);
    let a = 0;
    for (let i = start; i < end; i++) a = Math.max(a, Math.abs(f(values[i])));
    absmax[b] = a;
    for (let i = 0; i < mid.length; i++) thr[i] = f(mid[i] * a);
    for (let i = start; i < end; i++) {
      const x = f(values[i]);
      if (a === 0) {
        codes[i] = zero;
        continue;
      }
      let lo = 0;
      let hi = 255;
      while (lo < hi) {
        const m = (lo + hi) >> 1;
        if (x >= thr[m]) lo = m + 1;
        else hi = m;
      }
      codes[i] = lo;
    }
  }
  return { codes, absmax };
}

/** value = f32(map[code] · absmax[block]). */
export function dequantize8Ref(q: Quantized8, map: Float32Array): Float32Array {
  const out = new Float32Array(q.codes.length);
  for (let i = 0; i < out.length; i++) out[i] = Math.fround(map[q.codes[i]] * q.absmax[Math.floor(i / ADAMW8_BLOCK)]);
  return out;
}

/** One 8-bit AdamW step in place: param (float64), the quantized states m (signed map) and v (unsigned). */
export function adamw8StepRef(
  param: Float64Array,
  grad: ArrayLike<number>,
  state: { m: Quantized8; v: Quantized8 },
  maps: { signed: Float32Array; unsigned: Float32Array },
  step: number,
  cfg: AdamwConfig,
): void {
  const m = Float64Array.from(dequantize8Ref(state.m, maps.signed));
  const v = Float64Array.from(dequantize8Ref(state.v, maps.unsigned));
  adamwStepRef(param, grad, m, v, step, cfg);
  state.m = quantize8Ref(Float32Array.from(m), maps.signed);
  state.v = quantize8Ref(Float32Array.from(v), maps.unsigned);
}
