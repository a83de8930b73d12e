// LoRA dropout's keep mask, never stored (src/engine/lora-dropout.ts is the CPU twin; keep them
// equal): element `index` of the LoRA input is kept when the top 24 bits of
// pcg_hash(pcg_hash(index) ^ key) are >= threshold (= round(p · 2^24)), and then multiplied by
// scale = 1 / (1 - p). `key` folds (seed, step, micro-batch, layer, linear) on the CPU. Prepended
// to shaders/lora.wgsl and shaders/lora-backward.wgsl, whose DROPOUT override turns it on.

override DROPOUT: bool = false;

// PCG-based integer hash (Jarzynski & Olano, JCGT 2020); u32 arithmetic wraps.
fn pcg_hash(v: u32) -> u32 {
  let state = v * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}

/** 0 or `scale`: what element `index` of the LoRA input is multiplied by. */
fn dropout_factor(index: u32, key: u32, threshold: u32, scale: f32) -> f32 {
  let bits = pcg_hash(pcg_hash(index) ^ key) >> 8u;
  return select(scale, 0.0, bits < threshold);
}
