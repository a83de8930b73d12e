// Float64 reference for shaders/gradnorm.wgsl: torch.nn.utils.clip_grad_norm_ (norm_type 2):
// norm = sqrt(Σ_tensors Σ g²), coef = min(1, max_norm / (norm + 1e-6)), g *= coef.

export function gradNormRef(grads: readonly ArrayLike<number>[], maxNorm: number): { norm: number; coef: number; clipped: Float64Array[] } {
  let sum = 0;
  for (const g of grads) for (let i = 0; i < g.length; i++) sum += g[i] * g[i];
  const norm = Math.sqrt(sum);
  const coef = Math.min(1, maxNorm / (norm + 1e-6));
  return { norm, coef, clipped: grads.map((g) => Float64Array.from(g, (x) => x * coef)) };
}
