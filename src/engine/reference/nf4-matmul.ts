// Float64 reference for shaders/nf4-matmul.wgsl: the weight dequantized on the CPU exactly as bnb
// does it (dequantizeNf4, src/io/nf4.ts), then the float64 matmul of reference/matmul.ts.
import { dequantizeNf4, type Nf4Weight } from '../../io/nf4.ts';
import { matmulRef } from './matmul.ts';

/**
 * Forward: y[M, N] = x[M, K] · dequant(W)ᵀ + bias; backward: dx[M, K] = dy[M, N] · dequant(W).
 * Also returns Σ |products| (+ |bias|) per element, the scale for maxRelError.
 */
export function nf4MatmulRef(
  a: ArrayLike<number>,
  w: Nf4Weight,
  m: number,
  opts: { backward?: boolean; bias?: ArrayLike<number> } = {},
): { c: Float64Array; scale: Float64Array } {
  if (w.shape.length !== 2) throw new Error(`nf4MatmulRef: weight shape [${w.shape}]`);
  const [n, k] = w.shape;
  const wf = dequantizeNf4(w);
  const ref = opts.backward ? matmulRef(a, wf, { m, n: k, k: n }) : matmulRef(a, wf, { m, n, k, transB: true });
  if (opts.bias && !opts.backward) {
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        ref.c[i * n + j] += opts.bias[j];
        ref.scale[i * n + j] += Math.abs(opts.bias[j]);
      }
    }
  }
  return ref;
}
