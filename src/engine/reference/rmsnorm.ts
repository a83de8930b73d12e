// Float64 reference for shaders/rmsnorm.wgsl: exact math, no intermediate rounding (the GPU's
// casts between steps are part of the error a test measures against this).

/** y = w · x / sqrt(mean(x²) + eps) per row of `hidden` values, and rstd = 1 / sqrt(mean(x²) + eps). */
export function rmsnormRef(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  hidden: number,
  eps: number,
): { y: Float64Array; rstd: Float64Array } {
  const rows = x.length / hidden;
  const y = new Float64Array(x.length);
  const rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let sum = 0;
    for (let j = 0; j < hidden; j++) sum += x[r * hidden + j] ** 2;
    const s = 1 / Math.sqrt(sum / hidden + eps);
    rstd[r] = s;
    for (let j = 0; j < hidden; j++) y[r * hidden + j] = w[j] * x[r * hidden + j] * s;
  }
  return { y, rstd };
}

/**
 * The shader's arithmetic step by step, given its rstd: y = toY(fround(w · toX(fround(x · rstd)))),
 * each product rounded to f32 and cast as LlamaRMSNorm casts (toX: to x's type, toY: to y's type).
 * WGSL f32 products are correctly rounded, so a GPU must match this bit for bit.
 */
export function rmsnormCasts(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  rstd: ArrayLike<number>,
  hidden: number,
  toX: (v: number) => number,
  toY: (v: number) => number,
): Float32Array {
  const f = Math.fround;
  const y = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) y[i] = toY(f(w[i % hidden] * toX(f(x[i] * rstd[Math.floor(i / hidden)]))));
  return y;
}
