// Merging a LoRA adapter into base weights on the CPU (small models, tests): W' = W + scale·B·A
// (specs/formats.md §4), then to 16 bits for export. The per-element formula is the contract a GPU
// merge mirrors: for each output row o and input column i,
//   delta[o,i] = Σ_{k<r} B[o,k]·A[k,i]  (accumulated in f32, k ascending)
//   W'[o,i]   = W[o,i] + scale·delta[o,i]  (f32)
// with W [out, in], A [r, in], B [out, r] row-major and scale = alpha/r (alpha/sqrt(r) for rsLoRA).

import { loraScaling, loraTargets } from './peft.ts';
import type { LoraAdapter } from './peft.ts';
import type { ExportArch, WeightSource } from './export-arch.ts';

export class MergeError extends Error {
  override name = 'MergeError';
}

/** W + scale·B·A in f32. Writes into `out` (may be `w` itself) or a new array. */
export function mergeLora(
  w: Float32Array,
  a: Float32Array,
  b: Float32Array,
  rows: number,
  cols: number,
  r: number,
  scale: number,
  out?: Float32Array,
): Float32Array {
  if (w.length !== rows * cols) throw new MergeError(`merge: W has ${w.length} values, expected [${rows}, ${cols}]`);
  if (a.length !== r * cols) throw new MergeError(`merge: A has ${a.length} values, expected [${r}, ${cols}]`);
  if (b.length !== rows * r) throw new MergeError(`merge: B has ${b.length} values, expected [${rows}, ${r}]`);
  const dst = out ?? new Float32Array(w.length);
  if (dst.length !== w.length) throw new MergeError(`merge: output has ${dst.length} values, expected ${w.length}`);
  const delta = new Float32Array(cols);
  const s = Math.fround(scale);
  for (let o = 0; o < rows; o++) {
    delta.fill(0);
    for (let k = 0; k < r; k++) {
      const bk = b[o * r + k];
      if (bk === 0) continue;
      const ao = k * cols;
      for (let i = 0; i < cols; i++) delta[i] += bk * a[ao + i];
    }
    const wo = o * cols;
    for (let i = 0; i < cols; i++) dst[wo + i] = w[wo + i] + Math.fround(s * delta[i]);
  }
  return dst;
}

/** The same merge in float64 throughout (reference for tests). */
export function mergeLoraF64(w: ArrayLike<number>, a: ArrayLike<number>, b: ArrayLike<number>, rows: number, cols: number, r: number, scale: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let o = 0; o < rows; o++) {
    for (let i = 0; i < cols; i++) {
      let d = 0;
      for (let k = 0; k < r; k++) d += b[o * r + k] * a[k * cols + i];
      out[o * cols + i] = w[o * cols + i] + scale * d;
    }
  }
  return out;
}

/** How a linear's merge is computed: mergeLora here, or the same in a worker pool. */
export type MergeFn = (w: Float32Array, a: Float32Array, b: Float32Array, rows: number, cols: number, r: number, scale: number) => Float32Array | Promise<Float32Array>;

/**
 * Base weights with the adapter merged into every target linear as they are read; every other
 * tensor passes through unchanged. The base source is read once per tensor.
 */
export function mergedWeights(arch: ExportArch, base: WeightSource, adapter: LoraAdapter, merge: MergeFn = mergeLora): WeightSource {
  const targets = new Map(loraTargets(arch, adapter.settings).map((t) => [`${t.path}.weight`, t]));
  const scale = loraScaling(adapter.settings);
  const r = adapter.settings.r;
  const read = async (name: string): Promise<Float32Array> => {
    const w = await base.read(name);
    const t = targets.get(name);
    if (t === undefined) return w;
    const m = adapter.modules.get(t.path);
    if (!m) throw new MergeError(`adapter has no weights for ${t.path}`);
    return merge(w, m.a, m.b, t.linear.out, t.linear.in, r, scale);
  };
  const baseRows = base.readRows?.bind(base);
  if (!baseRows) return { read };
  // Untouched tensors (the embedding, lm_head) stream row by row; a merged tensor written in row
  // chunks is read and merged once, not once per chunk.
  let last: { name: string; values: Promise<Float32Array> } | null = null;
  return {
    read,
    async readRows(name, start, count) {
      const t = targets.get(name);
      if (t === undefined) return baseRows(name, start, count);
      if (last?.name !== name) last = { name, values: read(name) };
      const w = await last.values;
      return w.subarray(start * t.linear.in, (start + count) * t.linear.in);
    },
  };
}
