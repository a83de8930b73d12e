// LoRA dropout as PEFT applies it: y += scale · B (A · dropout(x)), inverted dropout (kept
// elements times 1 / (1 - p)), in training only. The mask is never stored: each element's keep
// bit is a counter-based hash of (seed, step, micro-batch, layer, linear, element index), so the
// forward, the recompute before a layer's backward (gradient checkpointing) and the backward
// itself all see the same mask, and a CPU reference can reproduce it (this file; the WGSL twin
// is shaders/lora-dropout.wgsl, which the LoRA kernels prepend).
//
// The hash is the PCG-based integer hash of Jarzynski & Olano ("Hash Functions for GPU
// Rendering", JCGT 2020): one multiply-add, a data-dependent shift, one multiply, a shift-xor.
// The per-(layer, linear, draw) part is folded into one 32-bit key on the CPU; per element the
// shader computes hash(hash(index) ^ key) and drops the element when its top 24 bits fall below
// round(p · 2^24).
import { LINEAR_NAMES, type LinearName } from './arch.ts';

/** The dropout of one LoRA path for one forward (a micro-batch of a step): what the kernels read. */
export interface LoraDropoutDraw {
  /** lora_dropout, in [0, 1). */
  p: number;
  /** loraDropoutKey(...): the hash of everything but the element index. */
  key: number;
}

/** pcg_hash(v) in u32 arithmetic, as shaders/lora-dropout.wgsl computes it. */
export function pcgHash(v: number): number {
  const state = (Math.imul(v >>> 0, 747796405) + 2891336453) >>> 0;
  const word = Math.imul(((state >>> ((state >>> 28) + 4)) ^ state) >>> 0, 277803737) >>> 0;
  return ((word >>> 22) ^ word) >>> 0;
}

/**
 * The key of one (seed, step, micro-batch, layer, linear) draw: the hash folded over the values
 * in that order. `step` is the optimizer step (1-based), `micro` the micro-batch of its
 * accumulation (0-based), so every forward of a run draws a fresh mask, as PEFT's nn.Dropout does.
 */
export function loraDropoutKey(seed: number, step: number, micro: number, layer: number, linear: LinearName): number {
  let h = pcgHash(seed >>> 0);
  for (const v of [step, micro, layer, LINEAR_NAMES.indexOf(linear)]) h = pcgHash((h ^ v) >>> 0);
  return h;
}

/** Elements whose 24-bit hash is below this are dropped: round(p · 2^24). */
export function dropoutThreshold(p: number): number {
  if (!(p >= 0 && p < 1)) throw new Error(`lora: lora_dropout must be in [0, 1), not ${p}`);
  return Math.round(p * 2 ** 24);
}

/** The factor a kept element is multiplied by: 1 / (1 - p) (inverted dropout), as f32. */
export function dropoutScale(p: number): number {
  return Math.fround(1 / (1 - p));
}

/** The uniform values the kernels take (zeros when there is no dropout). */
export function dropoutParams(d: LoraDropoutDraw | null | undefined): { drop_key: number; drop_threshold: number; drop_scale: number } {
  if (!d || d.p === 0) return { drop_key: 0, drop_threshold: 0, drop_scale: 1 };
  return { drop_key: d.key >>> 0, drop_threshold: dropoutThreshold(d.p), drop_scale: dropoutScale(d.p) };
}

/** The factor element `index` of the LoRA input is multiplied by under draw `d`: 0 or 1 / (1 - p). */
export function dropoutFactor(d: LoraDropoutDraw, index: number): number {
  const bits = pcgHash((pcgHash(index >>> 0) ^ d.key) >>> 0) >>> 8;
  return bits < dropoutThreshold(d.p) ? 0 : dropoutScale(d.p);
}

/** The whole mask of an [m, k] input as factors (the CPU reference's dropout(x) = x ∘ mask). */
export function dropoutMask(d: LoraDropoutDraw, elements: number): Float32Array {
  const out = new Float32Array(elements);
  for (let i = 0; i < elements; i++) out[i] = dropoutFactor(d, i);
  return out;
}
