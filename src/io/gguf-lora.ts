// A LoRA adapter as a GGUF file for llama.cpp's --lora (and Ollama's ADAPTER), next to a base GGUF
// (specs/formats.md §1.8): general.type "adapter", adapter.type "lora", adapter.lora.alpha, and per
// adapted linear `<base tensor>.lora_a` ne=[in, r] (PEFT lora_A [r, in]) and `.lora_b` ne=[r, out]
// (PEFT lora_B [out, r]), lora_b rows Q/K-permuted for arch llama as the base weights are.
// llama.cpp scales by alpha / r; for rsLoRA (alpha / sqrt(r)) the file stores alpha·sqrt(r).

import { GgufError, kv } from './gguf.ts';
import type { GGUFKV, GgufTensorToWrite } from './gguf.ts';
import { ggufArchName, permuteQK } from './gguf-model.ts';
import { GGMLType, ggmlTypeInfo } from './quants/ggml-types.ts';
import { quantize } from './quants/index.ts';
import { loraTargets } from './peft.ts';
import type { LoraAdapter } from './peft.ts';
import type { ExportArch } from './export-arch.ts';

const GGUF_LINEAR: Record<string, string> = {
  q_proj: 'attn_q',
  k_proj: 'attn_k',
  v_proj: 'attn_v',
  o_proj: 'attn_output',
  gate_proj: 'ffn_gate',
  up_proj: 'ffn_up',
  down_proj: 'ffn_down',
};

export type GgufLoraType = 'F32' | 'F16' | 'BF16' | 'Q8_0';

export interface GgufLoraOptions {
  arch: ExportArch;
  adapter: LoraAdapter;
  /** Tensor type (default F32). Q8_0 falls back to F16 for rows that are not a multiple of 32 (lora_b with r < 32). */
  type?: GgufLoraType;
  /** general.name */
  name?: string;
}

/** The alpha llama.cpp needs to apply PEFT's scaling (alpha / r, rsLoRA alpha / sqrt(r)). */
export function ggufLoraAlpha(s: { r: number; loraAlpha: number; useRslora?: boolean }): number {
  return s.useRslora ? s.loraAlpha * Math.sqrt(s.r) : s.loraAlpha;
}

export function ggufLoraAdapter(opts: GgufLoraOptions): { kvs: GGUFKV[]; tensors: GgufTensorToWrite[] } {
  const { arch, adapter } = opts;
  const a = ggufArchName(arch.family);
  const s = adapter.settings;
  const kvs: GGUFKV[] = [kv.str('general.architecture', a), kv.str('general.type', 'adapter')];
  if (opts.name) kvs.push(kv.str('general.name', opts.name));
  kvs.push(kv.u32('general.alignment', 32), kv.str('adapter.type', 'lora'), kv.f32('adapter.lora.alpha', ggufLoraAlpha(s)));
  const want = GGMLType[opts.type ?? 'F32'];
  const typeFor = (ne0: number) => (ne0 % ggmlTypeInfo(want)!.blockSize === 0 ? want : GGMLType.F16);
  const tensors: GgufTensorToWrite[] = [];
  for (const { layer, linear, path } of loraTargets(arch, s)) {
    const m = adapter.modules.get(path);
    if (!m) throw new GgufError(`adapter has no weights for ${path}`);
    const g = GGUF_LINEAR[linear.name];
    if (g === undefined) throw new GgufError(`no GGUF name for linear ${linear.name}`);
    const base = `blk.${layer}.${g}.weight`;
    const heads = a === 'llama' && linear.name === 'q_proj' ? arch.heads : a === 'llama' && linear.name === 'k_proj' ? arch.kvHeads : undefined;
    const ta = typeFor(linear.in);
    const tb = typeFor(s.r);
    tensors.push({ name: `${base}.lora_a`, ne: [linear.in, s.r], type: ta, data: () => quantize(ta, m.a) });
    tensors.push({
      name: `${base}.lora_b`,
      ne: [s.r, linear.out],
      type: tb,
      data: () => quantize(tb, heads === undefined ? m.b : permuteQK(m.b, linear.out, s.r, heads)),
    });
  }
  return { kvs, tensors };
}
