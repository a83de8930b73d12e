// Float64 reference for shaders/lmhead.wgsl: logits = h · Eᵀ, log-softmax statistics per row.

export interface LmHeadRef {
  /** [rows, V] logits. */
  logits: Float64Array;
  /** [rows, V] Σ_k |h_k E_vk|: the scale of each logit's f32 rounding error (maxRelError). */
  logitScale: Float64Array;
  /** [rows] log Σ_v exp(logit_v). */
  lse: Float64Array;
  /** [rows] lse - logit[target], 0 where target >= V (not trained). */
  loss: Float64Array;
}

export function lmHeadRef(
  h: ArrayLike<number>,
  embed: ArrayLike<number>,
  targets: ArrayLike<number>,
  s: { rows: number; hidden: number; vocab: number },
): LmHeadRef {
  const { rows, hidden, vocab } = s;
  const logits = new Float64Array(rows * vocab);
  const logitScale = new Float64Array(rows * vocab);
  const lse = new Float64Array(rows);
  const loss = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let mx = -Infinity;
    for (let v = 0; v < vocab; v++) {
      let sum = 0;
      let abs = 0;
      for (let k = 0; k < hidden; k++) {
        const prod = h[r * hidden + k] * embed[v * hidden + k];
        sum += prod;
        abs += Math.abs(prod);
      }
      logits[r * vocab + v] = sum;
      logitScale[r * vocab + v] = abs;
      if (sum > mx) mx = sum;
    }
    let se = 0;
    for (let v = 0; v < vocab; v++) se += Math.exp(logits[r * vocab + v] - mx);
    lse[r] = mx + Math.log(se);
    const t = targets[r];
    loss[r] = t < vocab ? lse[r] - logits[r * vocab + t] : 0;
  }
  return { logits, logitScale, lse, loss };
}
