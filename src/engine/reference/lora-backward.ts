// Float64 reference for shaders/lora-backward.wgsl: the gradients of y = y0 + s · (x Aᵀ) Bᵀ
// (reference/lora.ts) with u = x Aᵀ, given dy:
//   dB = s · dyᵀ u     [N, r]        du = s · dy B     [M, r]
//   dA = duᵀ x         [r, K]        dx = du A         [M, K]
// Each comes with its Σ |terms| scale for maxRelError (reference/matmul.ts); the scales of dA
// and dx are built on du's, so they bound the error inherited from rounding in du as well.
// With dropout (s.mask, the forward's factors): u = (x ∘ mask) Aᵀ, dA = duᵀ (x ∘ mask) and
// dx = mask ∘ (du A), the gradient of the masked input taken back through the mask.
import { droppedInput, loraRef, type LoraRefShape } from './lora.ts';

export interface LoraBackwardRef {
  u: Float64Array;
  du: Float64Array;
  duScale: Float64Array;
  da: Float64Array;
  daScale: Float64Array;
  db: Float64Array;
  dbScale: Float64Array;
  dx: Float64Array;
  dxScale: Float64Array;
}

export function loraBackwardRef(
  x: ArrayLike<number>,
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  dy: ArrayLike<number>,
  s: LoraRefShape,
): LoraBackwardRef {
  const { m, k, n, r, scale, mask } = s;
  // u = x · Aᵀ and its error scale, exactly as the forward reference computes them.
  const { u, uScale } = loraRef(x, a, b, new Float64Array(m * n), s);
  const xd = droppedInput(x, mask);
  const du = new Float64Array(m * r);
  const duScale = new Float64Array(m * r);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < r; j++) {
      let sum = 0;
      let abs = 0;
      for (let c = 0; c < n; c++) {
        sum += dy[i * n + c] * b[c * r + j];
        abs += Math.abs(dy[i * n + c] * b[c * r + j]);
      }
      du[i * r + j] = scale * sum;
      duScale[i * r + j] = Math.abs(scale) * abs;
    }
  }
  const db = new Float64Array(n * r);
  const dbScale = new Float64Array(n * r);
  for (let c = 0; c < n; c++) {
    for (let j = 0; j < r; j++) {
      let sum = 0;
      let abs = 0;
      for (let i = 0; i < m; i++) {
        sum += dy[i * n + c] * u[i * r + j];
        abs += Math.abs(dy[i * n + c]) * uScale[i * r + j];
      }
      db[c * r + j] = scale * sum;
      dbScale[c * r + j] = Math.abs(scale) * abs;
    }
  }
  const da = new Float64Array(r * k);
  const daScale = new Float64Array(r * k);
  for (let j = 0; j < r; j++) {
    for (let p = 0; p < k; p++) {
      let sum = 0;
      let abs = 0;
      for (let i = 0; i < m; i++) {
        sum += du[i * r + j] * xd[i * k + p];
        abs += duScale[i * r + j] * Math.abs(xd[i * k + p]);
      }
      da[j * k + p] = sum;
      daScale[j * k + p] = abs;
    }
  }
  const dx = new Float64Array(m * k);
  const dxScale = new Float64Array(m * k);
  for (let i = 0; i < m; i++) {
    for (let p = 0; p < k; p++) {
      let sum = 0;
      let abs = 0;
      for (let j = 0; j < r; j++) {
        sum += du[i * r + j] * a[j * k + p];
        abs += duScale[i * r + j] * Math.abs(a[j * k + p]);
      }
      const f = mask ? mask[i * k + p] : 1;
      dx[i * k + p] = f * sum;
      dxScale[i * k + p] = Math.abs(f) * abs;
    }
  }
  return { u, du, duScale, da, daScale, db, dbScale, dx, dxScale };
}
