// Float64 references for shaders/elementwise.wgsl, and the per-element error scales tests use
// with maxRelError (reference/matmul.ts).

/** max(|v|, floor) per element: relative error, absolute below `floor` (e.g. f16's 2^-14). */
export function magnitudes(values: ArrayLike<number>, floor = 0): Float64Array {
  const out = new Float64Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = Math.max(Math.abs(values[i]), floor);
  return out;
}

/** silu(gate) · up. */
export function swigluRef(gate: ArrayLike<number>, up: ArrayLike<number>): Float64Array {
  const out = new Float64Array(gate.length);
  for (let i = 0; i < gate.length; i++) out[i] = (gate[i] / (1 + Math.exp(-gate[i]))) * up[i];
  return out;
}

/** a + scale · b, and |a| + |scale · b| (the scale the rounding error lives on, despite cancellation). */
export function addRef(a: ArrayLike<number>, b: ArrayLike<number>, scale: number): { out: Float64Array; scale: Float64Array } {
  const out = new Float64Array(a.length);
  const mag = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) {
    out[i] = a[i] + scale * b[i];
    mag[i] = Math.abs(a[i]) + Math.abs(scale * b[i]);
  }
  return { out, scale: mag };
}
