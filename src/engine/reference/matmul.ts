// Float64 reference for shaders/matmul.wgsl, and the error measure kernel tests use.
import type { MatmulShape } from '../matmul.ts';

/** C = A · op(B) in float64, plus Σ_k |a_ik · b_kj| per element (the scale rounding errors live on). */
export function matmulRef(a: ArrayLike<number>, b: ArrayLike<number>, s: MatmulShape): { c: Float64Array; scale: Float64Array } {
  const { m, n, k } = s;
  const c = new Float64Array(m * n);
  const scale = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let sum = 0;
      let abs = 0;
      for (let p = 0; p < k; p++) {
        const prod = a[i * k + p] * (s.transB ? b[j * k + p] : b[p * n + j]);
        sum += prod;
        abs += Math.abs(prod);
      }
      c[i * n + j] = sum;
      scale[i * n + j] = abs;
    }
  }
  return { c, scale };
}

/**
 * max_ij |got - want| / Σ_k |a_ik b_kj|: the component-wise relative error of a dot product.
 * Unlike |got - want| / |want| it stays meaningful where cancellation makes `want` tiny.
 * f32 accumulation over K terms is bounded by about K · 2^-24; f16 output rounding adds 2^-11.
 */
export function maxRelError(got: ArrayLike<number>, want: ArrayLike<number>, scale: ArrayLike<number>): number {
  if (got.length !== want.length) throw new Error(`length ${got.length} != ${want.length}`);
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i] - want[i]) / Math.max(scale[i], Number.MIN_VALUE);
    if (Number.isNaN(err)) return NaN; // a NaN is never within tolerance
    if (err > worst) worst = err;
  }
  return worst;
}
