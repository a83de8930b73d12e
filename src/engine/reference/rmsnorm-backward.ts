// Float64 reference for shaders/rmsnorm-backward.wgsl: the exact gradient of
// y = w · x · rstd, rstd = 1 / sqrt(mean(x²) + eps) (reference/rmsnorm.ts), per row of `hidden`:
//   g    = w ∘ dy
//   dx_j = rstd · (g_j - x_j · rstd² · Σ_k g_k x_k / H)
//   dw_j = Σ_rows dy_j · x_j · rstd          (the weight is frozen in QLoRA; for completeness)

export interface RmsnormBackwardRef {
  /** [rows, hidden]. */
  dx: Float64Array;
  /** [rows, hidden] rstd |g_j| + rstd³ |x_j| Σ_k |g_k x_k| / H: the scale dx's rounding errors live on. */
  dxScale: Float64Array;
  /** [hidden]. */
  dw: Float64Array;
}

export function rmsnormBackwardRef(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  dy: ArrayLike<number>,
  hidden: number,
  eps: number,
): RmsnormBackwardRef {
  const rows = x.length / hidden;
  const dx = new Float64Array(x.length);
  const dxScale = new Float64Array(x.length);
  const dw = new Float64Array(hidden);
  for (let r = 0; r < rows; r++) {
    const base = r * hidden;
    let sq = 0;
    for (let j = 0; j < hidden; j++) sq += x[base + j] ** 2;
    const rstd = 1 / Math.sqrt(sq / hidden + eps);
    let dot = 0;
    let abs = 0;
    for (let j = 0; j < hidden; j++) {
      const gx = w[j] * dy[base + j] * x[base + j];
      dot += gx;
      abs += Math.abs(gx);
    }
    const c = (rstd * rstd * dot) / hidden;
    const cAbs = (rstd * rstd * abs) / hidden;
    for (let j = 0; j < hidden; j++) {
      const g = w[j] * dy[base + j];
      dx[base + j] = rstd * (g - x[base + j] * c);
      dxScale[base + j] = rstd * (Math.abs(g) + Math.abs(x[base + j]) * cAbs);
      dw[j] += dy[base + j] * x[base + j] * rstd;
    }
  }
  return { dx, dxScale, dw };
}
