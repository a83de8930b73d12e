// Float64 reference for shaders/attention.wgsl: per query, materialise the scores of the allowed
// keys, softmax them, and sum the values. Same masks and conventions as the shader (see
// src/engine/attention.ts): causal, window, segments; a query with no allowed key gets o = 0,
// lse = 0.
import type { AttentionShape } from '../attention.ts';

export interface AttentionRef {
  /** [batch, tq, heads, headDim]. */
  o: Float64Array;
  /** [batch, heads, tq]. */
  lse: Float64Array;
  /**
   * Σ_j p_j |v_jd| per element of o: the magnitude its rounding errors live on (o itself may
   * cancel to near zero). Use with maxRelError (reference/matmul.ts).
   */
  oScale: Float64Array;
}

/** Segment ids [batch, skv] of packed rows: documents 1, 2, … of the given lengths per row, then zeros (padding). */
export function segmentIdsOf(docs: number[][], skv: number): Uint32Array {
  const seg = new Uint32Array(docs.length * skv);
  docs.forEach((lengths, b) => {
    let at = b * skv;
    lengths.forEach((n, d) => {
      seg.fill(d + 1, at, at + n);
      at += n;
    });
  });
  return seg;
}

/** Whether query i (absolute position pos) may attend key j. */
export function attentionAllowed(
  pos: number,
  j: number,
  window: number,
  segments: ArrayLike<number> | undefined,
  segBase: number,
): boolean {
  if (j > pos) return false;
  if (window > 0 && pos - j >= window) return false;
  if (segments) {
    const sq = segments[segBase + pos];
    if (sq === 0 || segments[segBase + j] !== sq) return false;
  }
  return true;
}

/**
 * q [B, tq, Hq, D], k/v [B, skv, Hkv, D] (row-major), segments [B, skv] or undefined.
 */
export function attentionRef(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  segments: ArrayLike<number> | undefined,
  s: AttentionShape,
): AttentionRef {
  const { batch, tq, skv, heads, kvHeads, headDim: D } = s;
  const scale = s.scale ?? 1 / Math.sqrt(D);
  const offset = s.causalOffset ?? skv - tq;
  const window = s.window ?? 0;
  const group = heads / kvHeads;
  const o = new Float64Array(batch * tq * heads * D);
  const oScale = new Float64Array(o.length);
  const lse = new Float64Array(batch * heads * tq);
  const scores = new Float64Array(skv);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      const kvh = Math.floor(h / group);
      for (let i = 0; i < tq; i++) {
        const pos = offset + i;
        const qb = ((b * tq + i) * heads + h) * D;
        let max = -Infinity;
        for (let j = 0; j < skv; j++) {
          scores[j] = -Infinity;
          if (!attentionAllowed(pos, j, window, segments, b * skv)) continue;
          const kb = ((b * skv + j) * kvHeads + kvh) * D;
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q[qb + d] * k[kb + d];
          scores[j] = dot * scale;
          max = Math.max(max, scores[j]);
        }
        if (max === -Infinity) continue; // no allowed key: o = 0, lse = 0
        let sum = 0;
        for (let j = 0; j < skv; j++) sum += Math.exp(scores[j] - max);
        lse[(b * heads + h) * tq + i] = max + Math.log(sum);
        for (let j = 0; j < skv; j++) {
          if (scores[j] === -Infinity) continue;
          const w = Math.exp(scores[j] - max) / sum;
          const vb = ((b * skv + j) * kvHeads + kvh) * D;
          for (let d = 0; d < D; d++) {
            o[qb + d] += w * v[vb + d];
            oScale[qb + d] += w * Math.abs(v[vb + d]);
          }
        }
      }
    }
  }
  return { o, lse, oScale };
}
