// The LoRA gradient buffers of a training run: per layer, per adapted linear, dA [r, in] and
// dB [out, r] in f32, shaped as the LoraSet they belong to. The backward accumulates into them
// (+=) across the micro-batches of a step; the step zeroes them first.
import type { LinearName } from '../arch.ts';
import type { LoraGrads } from '../lora-backward.ts';
import type { LoraSet } from '../lora-weights.ts';
import { createTensor, readTensor, type Tensor } from '../tensor.ts';
import { linearModulePath, type ModelArch } from '../arch.ts';

export interface LoraGradSet {
  /** Per decoder layer, the gradients of the adapted linears (absent where the set has none). */
  layers: Partial<Record<LinearName, LoraGrads>>[];
}

export function createLoraGrads(device: GPUDevice, lora: LoraSet): LoraGradSet {
  const layers = lora.layers.map((layer, i) => {
    const out: Partial<Record<LinearName, LoraGrads>> = {};
    for (const [name, w] of Object.entries(layer) as [LinearName, (typeof layer)[LinearName]][]) {
      if (!w) continue;
      out[name] = {
        a: createTensor(device, [...w.a.shape], 'f32', `lora.${i}.${name}.grad_A`, 'lora'),
        b: createTensor(device, [...w.b.shape], 'f32', `lora.${i}.${name}.grad_B`, 'lora'),
      };
    }
    return out;
  });
  return { layers };
}

/** Every gradient tensor, in (layer, linear, A then B) order. */
export function gradTensors(g: LoraGradSet): Tensor[] {
  const out: Tensor[] = [];
  for (const layer of g.layers) for (const x of Object.values(layer)) out.push(x.a, x.b);
  return out;
}

/** Records zeroing every gradient into `enc`. */
export function encodeZeroGrads(enc: GPUCommandEncoder, g: LoraGradSet): void {
  for (const t of gradTensors(g)) enc.clearBuffer(t.buffer);
}

export function destroyLoraGrads(g: LoraGradSet): void {
  for (const t of gradTensors(g)) t.buffer.destroy();
  g.layers = [];
}

/** The gradients read back, keyed by PEFT's parameter names ("<module path>.lora_A" / ".lora_B"). */
export async function readLoraGrads(device: GPUDevice, arch: ModelArch, g: LoraGradSet): Promise<Map<string, { a: Float32Array; b: Float32Array }>> {
  const out = new Map<string, { a: Float32Array; b: Float32Array }>();
  for (let i = 0; i < g.layers.length; i++) {
    for (const l of arch.linears) {
      const x = g.layers[i][l.name];
      if (x) out.set(linearModulePath(i, l), { a: await readTensor(device, x.a), b: await readTensor(device, x.b) });
    }
  }
  return out;
}
