// Float64 reference for shaders/lora.wgsl: u = x · Aᵀ, y = y0 + scale · u · Bᵀ, with the
// per-element scales the error measure (maxRelError, reference/matmul.ts) divides by. With
// dropout, x is replaced by x ∘ mask (the factors of lora-dropout.ts dropoutMask: 0 or 1 / (1 - p)).

export interface LoraRefShape {
  m: number;
  k: number;
  n: number;
  r: number;
  scale: number;
  /** Dropout factors per element of x [m, k] (training); absent: no dropout. */
  mask?: ArrayLike<number>;
}

/** x ∘ mask in float64 (x itself without a mask). */
export function droppedInput(x: ArrayLike<number>, mask: ArrayLike<number> | undefined): ArrayLike<number> {
  if (!mask) return x;
  if (mask.length !== x.length) throw new Error(`lora reference: mask has ${mask.length} values for ${x.length} inputs`);
  return Float64Array.from(x, (v, i) => v * mask[i]);
}

/**
 * u [m, r] and y [m, n] in float64 (u = dropout(x) · Aᵀ when s.mask is given). uScale = Σ_k |x A|; yScale = |y0| + |scale| Σ_j U_j |B_nj| with
 * U_j = Σ_k |x_k A_jk|: it bounds the error y inherits from rounding in u as well as its own.
 */
export function loraRef(
  x: ArrayLike<number>,
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  y0: ArrayLike<number>,
  s: LoraRefShape,
): { u: Float64Array; uScale: Float64Array; y: Float64Array; yScale: Float64Array } {
  const { m, k, n, r, scale } = s;
  x = droppedInput(x, s.mask);
  const u = new Float64Array(m * r);
  const uScale = new Float64Array(m * r);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < r; j++) {
      let sum = 0;
      let abs = 0;
      for (let p = 0; p < k; p++) {
        const prod = x[i * k + p] * a[j * k + p];
        sum += prod;
        abs += Math.abs(prod);
      }
      u[i * r + j] = sum;
      uScale[i * r + j] = abs;
    }
  }
  const y = new Float64Array(m * n);
  const yScale = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let c = 0; c < n; c++) {
      let sum = 0;
      let abs = 0;
      for (let j = 0; j < r; j++) {
        sum += u[i * r + j] * b[c * r + j];
        abs += uScale[i * r + j] * Math.abs(b[c * r + j]);
      }
      y[i * n + c] = y0[i * n + c] + scale * sum;
      yScale[i * n + c] = Math.abs(y0[i * n + c]) + Math.abs(scale) * abs;
    }
  }
  return { u, uScale, y, yScale };
}
