// Float64 reference sampler for shaders/sample.wgsl, written the way transformers' logits
// processors are (RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper, TopKLogitsWarper,
// TopPLogitsWarper with a sort and a cumulative sum), then the inverse-CDF draw in index order
// with the given uniform number (rounded to f32, as the GPU receives it).
import { checkOptions, type SampleOptions } from '../sample.ts';

export interface SampleRef {
  /** The chosen token. */
  token: number;
  /** The final distribution (0 for removed tokens; one-hot when greedy). */
  probs: Float64Array;
}

const BELOW_ONE = Math.fround(0.99999994);

export function sampleRef(logits: ArrayLike<number>, prev: ArrayLike<number>, u: number, opts: SampleOptions): SampleRef {
  const o = checkOptions(opts);
  const V = logits.length;
  const z = Float64Array.from(logits);
  if (o.repetitionPenalty !== 1) {
    // gather then scatter: each distinct id once, from the original value
    for (const id of new Set(Array.from(prev))) {
      if (id < V) z[id] = logits[id] < 0 ? logits[id] * o.repetitionPenalty : logits[id] / o.repetitionPenalty;
    }
  }
  const probs = new Float64Array(V);
  if (o.temperature === 0) {
    let best = 0;
    for (let i = 1; i < V; i++) if (z[i] > z[best]) best = i;
    probs[best] = 1;
    return { token: best, probs };
  }
  const s = z.map((v) => v / o.temperature);
  const kept = new Uint8Array(V).fill(1);
  if (o.topK > 0 && o.topK < V) {
    const kth = Float64Array.from(s).sort((a, b) => b - a)[o.topK - 1];
    for (let i = 0; i < V; i++) if (s[i] < kth) kept[i] = 0;
  }
  const softmaxKept = () => {
    let m = -Infinity;
    for (let i = 0; i < V; i++) if (kept[i] && s[i] > m) m = s[i];
    const e = new Float64Array(V);
    let total = 0;
    for (let i = 0; i < V; i++) {
      if (kept[i]) {
        e[i] = Math.exp(s[i] - m);
        total += e[i];
      }
    }
    return e.map((v) => v / total);
  };
  if (o.topP < 1) {
    const p = softmaxKept();
    const order = Array.from({ length: V }, (_, i) => i).sort((a, b) => p[a] - p[b] || a - b); // ascending
    let cum = 0;
    for (let j = 0; j < V - 1; j++) {
      // the last (most probable) token is always kept: min_tokens_to_keep = 1
      cum += p[order[j]];
      if (cum <= 1 - o.topP) kept[order[j]] = 0;
    }
  }
  const final = softmaxKept();
  const r = Math.min(Math.max(Math.fround(u), 0), BELOW_ONE);
  let acc = 0;
  let token = -1;
  let last = 0;
  for (let i = 0; i < V; i++) {
    if (!kept[i]) continue;
    probs[i] = final[i];
    last = i;
    acc += final[i];
    if (token < 0 && acc > r) token = i;
  }
  return { token: token < 0 ? last : token, probs };
}

/** [lo, hi): the part of [0, 1) whose u draws `token` from `probs` (inverse CDF in index order). */
export function cdfInterval(probs: ArrayLike<number>, token: number): [number, number] {
  let lo = 0;
  for (let i = 0; i < token; i++) lo += probs[i];
  return [lo, lo + probs[token]];
}
