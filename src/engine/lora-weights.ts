// A LoRA set on the GPU: per layer, per target linear, lora_A [r, in] and lora_B [out, r] as f32
// master weights (both numeric modes), with PEFT's scaling. Made fresh as PEFT initialises it
// (A kaiming-uniform with a = sqrt(5), i.e. U(-1/sqrt(in), 1/sqrt(in)), from a seeded RNG; B zero)
// or from a PEFT adapter (src/io/peft.ts readPeftAdapter), and read back into one for export.
import { LINEAR_NAMES, linearModulePath, type LinearName, type ModelArch } from './arch.ts';
import { loraScale, type LoraWeights } from './lora.ts';
import { dropoutThreshold, loraDropoutKey } from './lora-dropout.ts';
import { createTensor, readTensor, uploadTensor } from './tensor.ts';
import type { LoraAdapter, LoraModule } from '../io/peft.ts';
import { rng } from '../util/random.ts';

export interface LoraSpec {
  r: number;
  /** lora_alpha. */
  alpha: number;
  /** use_rslora: scaling alpha / sqrt(r) instead of alpha / r. */
  rslora?: boolean;
  /** target_modules. */
  targets: readonly LinearName[];
  /** layers_to_transform; absent or null: every layer. */
  layers?: readonly number[] | null;
}

export interface LoraSet {
  spec: LoraSpec;
  /** loraScale(spec): what B (A x) is multiplied by. */
  scale: number;
  /** Per decoder layer, the adapted linears (absent: no LoRA there). */
  layers: Partial<Record<LinearName, LoraWeights>>[];
}

/** The (layer, linear) pairs a spec adapts, in layer order then transformers' linear order. */
export function loraTargets(arch: ModelArch, spec: LoraSpec): LoraTarget[] {
  for (const t of spec.targets) if (!LINEAR_NAMES.includes(t)) throw new Error(`lora: ${t} is not a linear of a decoder layer`);
  const out: LoraTarget[] = [];
  for (let i = 0; i < arch.layers; i++) {
    if (spec.layers && !spec.layers.includes(i)) continue;
    for (const l of arch.linears) {
      if (spec.targets.includes(l.name)) out.push({ layer: i, name: l.name, in: l.in, out: l.out, path: linearModulePath(i, l) });
    }
  }
  return out;
}

export interface LoraTarget {
  layer: number;
  name: LinearName;
  in: number;
  out: number;
  /** model.layers.{i}.{self_attn|mlp}.{name}: the module path PEFT keys are built on. */
  path: string;
}

/**
 * A fresh LoRA set as PEFT initialises one (init_lora_weights=True): A from kaiming_uniform_(a =
 * sqrt(5)), whose bound is gain · sqrt(3 / fan_in) = sqrt(2 / 6) · sqrt(3 / in) = 1 / sqrt(in),
 * drawn from rng(seed) in target order; B zero, so the adapted model starts equal to the base.
 */
export function createLora(device: GPUDevice, arch: ModelArch, spec: LoraSpec, seed: number): LoraSet {
  const scale = loraScale({ r: spec.r, alpha: spec.alpha, rslora: spec.rslora });
  const next = rng(seed);
  const layers: LoraSet['layers'] = Array.from({ length: arch.layers }, () => ({}));
  for (const t of loraTargets(arch, spec)) {
    const bound = 1 / Math.sqrt(t.in);
    const a = new Float32Array(spec.r * t.in);
    for (let i = 0; i < a.length; i++) a[i] = (next() * 2 - 1) * bound;
    layers[t.layer][t.name] = {
      a: uploadTensor(device, a, [spec.r, t.in], 'f32', `lora.${t.layer}.${t.name}.A`),
      b: createTensor(device, [t.out, spec.r], 'f32', `lora.${t.layer}.${t.name}.B`),
      scale,
    };
  }
  return { spec, scale, layers };
}

/** A LoRA set from a PEFT adapter (readPeftAdapter's result, already checked against the model). */
export function loraFromAdapter(device: GPUDevice, arch: ModelArch, adapter: LoraAdapter): LoraSet {
  const s = adapter.settings;
  const spec: LoraSpec = {
    r: s.r,
    alpha: s.loraAlpha,
    rslora: s.useRslora ?? false,
    targets: s.targetModules.filter((t): t is LinearName => (LINEAR_NAMES as readonly string[]).includes(t)),
    layers: s.layersToTransform ?? null,
  };
  const scale = loraScale({ r: spec.r, alpha: spec.alpha, rslora: spec.rslora });
  const layers: LoraSet['layers'] = Array.from({ length: arch.layers }, () => ({}));
  for (const t of loraTargets(arch, spec)) {
    const path = t.path;
    const m = adapter.modules.get(path);
    if (!m) throw new Error(`lora: the adapter has no ${path}`);
    if (m.a.length !== spec.r * t.in || m.b.length !== t.out * spec.r) throw new Error(`lora: ${path} has the wrong size for r = ${spec.r}`);
    layers[t.layer][t.name] = {
      a: uploadTensor(device, m.a, [spec.r, t.in], 'f32', `lora.${path}.A`),
      b: uploadTensor(device, m.b, [t.out, spec.r], 'f32', `lora.${path}.B`),
      scale,
    };
  }
  return { spec, scale, layers };
}

/** The set's weights read back as a PEFT adapter's modules (for export with peftAdapterFiles). */
export async function readLoraModules(device: GPUDevice, arch: ModelArch, set: LoraSet): Promise<Map<string, LoraModule>> {
  const out = new Map<string, LoraModule>();
  for (let i = 0; i < arch.layers; i++) {
    for (const l of arch.linears) {
      const w = set.layers[i][l.name];
      if (w) out.set(linearModulePath(i, l), { a: await readTensor(device, w.a), b: await readTensor(device, w.b) });
    }
  }
  return out;
}

/** Which forward of a run is being recorded, for LoRA dropout's mask (lora-dropout.ts). */
export interface DropoutDraw {
  /** lora_dropout in [0, 1); 0 leaves the kernels exactly as without dropout. */
  p: number;
  seed: number;
  /** Optimizer step, 1-based. */
  step: number;
  /** Micro-batch of the step's accumulation, 0-based. */
  micro: number;
}

/**
 * Turns dropout on for the forward (and its recompute and backward) about to be recorded, each
 * adapted linear with its own key; null turns it off (eval, chat, between steps).
 */
export function setLoraDropout(set: LoraSet, draw: DropoutDraw | null): void {
  if (draw) dropoutThreshold(draw.p); // validates p
  set.layers.forEach((layer, i) => {
    for (const [name, w] of Object.entries(layer) as [LinearName, LoraWeights][]) {
      w.dropout = draw && draw.p > 0 ? { p: draw.p, key: loraDropoutKey(draw.seed, draw.step, draw.micro, i, name) } : null;
    }
  });
}

export function destroyLora(set: LoraSet): void {
  for (const layer of set.layers) {
    for (const w of Object.values(layer)) {
      w.a.buffer.destroy();
      w.b.buffer.destroy();
    }
  }
  set.layers = [];
}
