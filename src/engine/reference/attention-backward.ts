// Float64 reference for shaders/attention-backward.wgsl: the gradients of the attention forward
// (reference/attention.ts, same masks and conventions) given dO, materialising each query's
// probabilities (tiny sizes only). Per (batch, query head h, query i) with allowed keys j:
//   p_j  = softmax_j(scale · q_i · k_j)       D_i = dO_i · o_i
//   dp_j = dO_i · v_j                          ds_j = p_j (dp_j - D_i)
//   dq_i = scale Σ_j ds_j k_j    dk_j += scale ds_j q_i    dv_j += p_j dO_i
// dk and dv of a kv head sum over the query heads of its GQA group. A query with no allowed key
// (padding) contributes nothing; keys no query attends get zero gradients.
import type { AttentionShape } from '../attention.ts';
import { attentionAllowed } from './attention.ts';

export interface AttentionBackwardRef {
  /** [batch, tq, heads, headDim]. */
  dq: Float64Array;
  /** [batch, skv, kvHeads, headDim]. */
  dk: Float64Array;
  dv: Float64Array;
  /** [batch, heads, tq]: D_i = dO_i · o_i. */
  delta: Float64Array;
  /**
   * Σ |terms| scales for maxRelError (reference/matmul.ts), with |ds_j| bounded by
   * p_j (Σ_d |dO_d v_jd| + Σ_j' p_j' Σ_d |dO_d v_j'd|): they cover the cancellation in dp - D.
   */
  dqScale: Float64Array;
  dkScale: Float64Array;
  dvScale: Float64Array;
}

export function attentionBackwardRef(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  dout: ArrayLike<number>,
  segments: ArrayLike<number> | undefined,
  s: AttentionShape,
): AttentionBackwardRef {
  const { batch, tq, skv, heads, kvHeads, headDim: D } = s;
  const scale = s.scale ?? 1 / Math.sqrt(D);
  const offset = s.causalOffset ?? skv - tq;
  const window = s.window ?? 0;
  const group = heads / kvHeads;
  const dq = new Float64Array(batch * tq * heads * D);
  const dqScale = new Float64Array(dq.length);
  const dk = new Float64Array(batch * skv * kvHeads * D);
  const dkScale = new Float64Array(dk.length);
  const dv = new Float64Array(dk.length);
  const dvScale = new Float64Array(dk.length);
  const delta = new Float64Array(batch * heads * tq);
  const p = new Float64Array(skv);
  const dp = new Float64Array(skv);
  const dpAbs = new Float64Array(skv);
  const o = new Float64Array(D);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      const kvh = Math.floor(h / group);
      for (let i = 0; i < tq; i++) {
        const pos = offset + i;
        const qb = ((b * tq + i) * heads + h) * D;
        const allowed: number[] = [];
        let max = -Infinity;
        for (let j = 0; j < skv; j++) {
          if (!attentionAllowed(pos, j, window, segments, b * skv)) continue;
          allowed.push(j);
          const kb = ((b * skv + j) * kvHeads + kvh) * D;
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q[qb + d] * k[kb + d];
          p[j] = dot * scale;
          max = Math.max(max, p[j]);
        }
        if (allowed.length === 0) continue;
        let sum = 0;
        for (const j of allowed) sum += Math.exp(p[j] - max);
        o.fill(0);
        for (const j of allowed) {
          p[j] = Math.exp(p[j] - max) / sum;
          const vb = ((b * skv + j) * kvHeads + kvh) * D;
          let dot = 0;
          let abs = 0;
          for (let d = 0; d < D; d++) {
            o[d] += p[j] * v[vb + d];
            dot += dout[qb + d] * v[vb + d];
            abs += Math.abs(dout[qb + d] * v[vb + d]);
          }
          dp[j] = dot;
          dpAbs[j] = abs;
        }
        let di = 0;
        let diAbs = 0;
        for (let d = 0; d < D; d++) di += dout[qb + d] * o[d];
        for (const j of allowed) diAbs += p[j] * dpAbs[j];
        delta[(b * heads + h) * tq + i] = di;
        for (const j of allowed) {
          const ds = p[j] * (dp[j] - di);
          const dsAbs = p[j] * (dpAbs[j] + diAbs);
          const kb = ((b * skv + j) * kvHeads + kvh) * D;
          for (let d = 0; d < D; d++) {
            dq[qb + d] += scale * ds * k[kb + d];
            dqScale[qb + d] += Math.abs(scale) * dsAbs * Math.abs(k[kb + d]);
            dk[kb + d] += scale * ds * q[qb + d];
            dkScale[kb + d] += Math.abs(scale) * dsAbs * Math.abs(q[qb + d]);
            dv[kb + d] += p[j] * dout[qb + d];
            dvScale[kb + d] += p[j] * Math.abs(dout[qb + d]);
          }
        }
      }
    }
  }
  return { dq, dk, dv, delta, dqScale, dkScale, dvScale };
}
