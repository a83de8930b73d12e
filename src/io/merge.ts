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
  const fr = Math.fround;
  const s = fr(scale);
  // The k with B[o,k] != 0 (zeros are skipped, as they always were), and where A's row k starts.
  const kb = new Float64Array(r);
  const ko = new Int32Array(r);
  const c8 = cols - (cols % 8);
  for (let o = 0; o < rows; o++) {
    let nk = 0;
    for (let k = 0; k < r; k++) {
      const bk = b[o * r + k];
      if (bk === 0) continue;
      kb[nk] = bk;
      ko[nk] = k * cols;
      nk++;
    }
    const wo = o * cols;
    // Eight columns at a time, each delta in a register: the same f32 roundings in the same k
    // order as delta[i] += B[o,k]·A[k,i] over a Float32Array (the product is exact in f64).
    let i = 0;
    for (; i < c8; i += 8) {
      let d0 = 0;
      let d1 = 0;
      let d2 = 0;
      let d3 = 0;
      let d4 = 0;
      let d5 = 0;
      let d6 = 0;
      let d7 = 0;
      for (let j = 0; j < nk; j++) {
        const bk = kb[j];
        const ao = ko[j] + i;
        d0 = fr(d0 + bk * a[ao]);
        d1 = fr(d1 + bk * a[ao + 1]);
        d2 = fr(d2 + bk * a[ao + 2]);
        d3 = fr(d3 + bk * a[ao + 3]);
        d4 = fr(d4 + bk * a[ao + 4]);
        d5 = fr(d5 + bk * a[ao + 5]);
        d6 = fr(d6 + bk * a[ao + 6]);
        d7 = fr(d7 + bk * a[ao + 7]);
      }
      dst[wo + i] = w[wo + i] + fr(s * d0);
      dst[wo + i + 1] = w[wo + i + 1] + fr(s * d1);
      dst[wo + i + 2] = w[wo + i + 2] + fr(s * d2);
      dst[wo + i + 3] = w[wo + i + 3] + fr(s * d3);
      dst[wo + i + 4] = w[wo + i + 4] + fr(s * d4);
      dst[wo + i + 5] = w[wo + i + 5] + fr(s * d5);
      dst[wo + i + 6] = w[wo + i + 6] + fr(s * d6);
      dst[wo + i + 7] = w[wo + i + 7] + fr(s * d7);
    }
    for (; i < cols; i++) {
      let d = 0;
      for (let j = 0; j < nk; j++) d = fr(d + kb[j] * a[ko[j] + i]);
      dst[wo + i] = w[wo + i] + fr(s * d);
    }
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
  if (!base.readRows) return { read };
  // Untouched tensors (the embedding, lm_head) stream row by row; a merged tensor written in row
  // chunks is read and merged once, not once per chunk.
  const cols = new Map([...targets].map(([name, t]) => [name, t.linear.in]));
  return wholeTensorRows({ read, readRows: base.readRows.bind(base) }, cols);
}

/**
 * `source` with the row reads of the tensors in `cols` (name -> row length) served from one whole
 * read of each; other tensors' rows still stream. The last `keep` tensors read stay (default 2:
 * an exporter may start reading the next tensor's rows while the current one's last rows are due).
 */
export function wholeTensorRows(source: WeightSource, cols: ReadonlyMap<string, number>, keep = 2): WeightSource {
  const rowsOf = source.readRows?.bind(source);
  if (!rowsOf) return source;
  const recent: { name: string; values: Promise<Float32Array> }[] = [];
  return {
    read: (name) => source.read(name),
    async readRows(name, start, count) {
      const c = cols.get(name);
      if (c === undefined) return rowsOf(name, start, count);
      let hit = recent.find((e) => e.name === name);
      if (!hit) {
        hit = { name, values: source.read(name) };
        recent.push(hit);
        if (recent.length > keep) recent.shift();
      }
      const w = await hit.values;
      return w.subarray(start * c, (start + count) * c);
    },
  };
}
