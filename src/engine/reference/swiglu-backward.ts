// Float64 reference for shaders/swiglu-backward.wgsl: the gradient of out = silu(gate) · up,
//   s = sigmoid(g), silu(g) = g s, silu'(g) = s (1 + g (1 - s))
//   dgate = dout · up · silu'(g),  dup = dout · silu(g)

export interface SwigluBackwardRef {
  dgate: Float64Array;
  dup: Float64Array;
  /** |dout · up| (s + |g| s (1 - s)): the scale dgate's rounding errors live on (silu' cancels near g = -1.28). */
  dgateScale: Float64Array;
}

export function swigluBackwardRef(gate: ArrayLike<number>, up: ArrayLike<number>, dout: ArrayLike<number>): SwigluBackwardRef {
  const n = gate.length;
  const dgate = new Float64Array(n);
  const dup = new Float64Array(n);
  const dgateScale = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const g = gate[i];
    const s = 1 / (1 + Math.exp(-g));
    dgate[i] = dout[i] * up[i] * s * (1 + g * (1 - s));
    dup[i] = dout[i] * g * s;
    dgateScale[i] = Math.abs(dout[i] * up[i]) * (s + Math.abs(g) * s * (1 - s));
  }
  return { dgate, dup, dgateScale };
}
