// Float64 reference for shaders/rope.wgsl. The angle is formed as transformers forms it, an f32
// product position · inv_freq rounded to f32 (Math.fround); cos, sin and the rotation are float64.
// So the reference is the exact rotation by the f32 angle, and a test's error is the GPU's own
// (cos/sin and the f32 rotation), not the angle rounding both sides share.

/**
 * x [tokens, heads, headDim] rotated in rotate_half pairs (d, d + headDim/2); with `inverse`,
 * by -angle. Also |x1 cos| + |x2 sin| per output (the scale of its rounding error).
 */
export function ropeRef(
  x: ArrayLike<number>,
  positions: ArrayLike<number>,
  invFreq: ArrayLike<number>,
  heads: number,
  headDim: number,
  inverse = false,
): { y: Float64Array; scale: Float64Array } {
  const half = headDim / 2;
  const y = new Float64Array(x.length);
  const scale = new Float64Array(x.length);
  for (let t = 0; t < positions.length; t++) {
    for (let h = 0; h < heads; h++) {
      const base = (t * heads + h) * headDim;
      for (let d = 0; d < half; d++) {
        const angle = Math.fround(Math.fround(positions[t]) * Math.fround(invFreq[d])) * (inverse ? -1 : 1);
        const c = Math.cos(angle);
        const s = Math.sin(angle);
        const x1 = x[base + d];
        const x2 = x[base + d + half];
        y[base + d] = x1 * c - x2 * s;
        y[base + d + half] = x2 * c + x1 * s;
        scale[base + d] = Math.abs(x1 * c) + Math.abs(x2 * s);
        scale[base + d + half] = Math.abs(x2 * c) + Math.abs(x1 * s);
      }
    }
  }
  return { y, scale };
}
