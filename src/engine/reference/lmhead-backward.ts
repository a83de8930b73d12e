// Float64 reference for shaders/lmhead-backward.wgsl: the gradient of
//   L = Σ_(trained rows r) (lse_r - logit_r[t_r]) / N,   logits = h · Eᵀ
// (reference/lmhead.ts) w.r.t. h: dh_r = Σ_v (softmax(logits_r)_v - [v = t_r]) E_v / N for a
// trained row (t_r < V), 0 otherwise. N is the number of trained tokens of the whole accumulated
// batch, so micro-batches of one step share it.

export interface LmHeadBackwardRef {
  /** [rows, hidden]. */
  dh: Float64Array;
  /** [rows, hidden] Σ_v (p_v + [v = t]) |E_vk| / N: the scale of dh's rounding errors. */
  dhScale: Float64Array;
  /** Σ_r loss_r / N: the loss these are the gradients of. */
  loss: number;
}

export function lmHeadBackwardRef(
  h: ArrayLike<number>,
  embed: ArrayLike<number>,
  targets: ArrayLike<number>,
  s: { rows: number; hidden: number; vocab: number; normalizer: number },
): LmHeadBackwardRef {
  const { rows, hidden, vocab, normalizer } = s;
  const dh = new Float64Array(rows * hidden);
  const dhScale = new Float64Array(rows * hidden);
  const logits = new Float64Array(vocab);
  let loss = 0;
  for (let r = 0; r < rows; r++) {
    const t = targets[r];
    if (!(t < vocab)) continue;
    let max = -Infinity;
    for (let v = 0; v < vocab; v++) {
      let dot = 0;
      for (let k = 0; k < hidden; k++) dot += h[r * hidden + k] * embed[v * hidden + k];
      logits[v] = dot;
      max = Math.max(max, dot);
    }
    let sum = 0;
    for (let v = 0; v < vocab; v++) sum += Math.exp(logits[v] - max);
    const lse = max + Math.log(sum);
    loss += (lse - logits[t]) / normalizer;
    for (let v = 0; v < vocab; v++) {
      const pv = Math.exp(logits[v] - lse);
      const g = (pv - (v === t ? 1 : 0)) / normalizer;
      const gAbs = (pv + (v === t ? 1 : 0)) / normalizer;
      for (let k = 0; k < hidden; k++) {
        dh[r * hidden + k] += g * embed[v * hidden + k];
        dhScale[r * hidden + k] += gAbs * Math.abs(embed[v * hidden + k]);
      }
    }
  }
  return { dh, dhScale, loss };
}
