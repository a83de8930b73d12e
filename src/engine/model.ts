// The model's GPU weights arranged for the forward pass: per layer its norms, its seven frozen
// linears (NF4, or dense for an unquantized base) with their biases, Qwen3's q/k norms; the
// embedding, the final norm and the lm_head (the embedding itself when tied); the RoPE inverse
// frequencies. Norm weights are in the activation dtype (the kernels take w and y in one storage
// type); embed_tokens and lm_head in a storage type of their own (embedDtype: the lookup and the
// chunked lm_head widen E to f32 as they read it, so training keeps f32 activations against an f16
// E, 2 x 1.05 GB for Llama 3 8B instead of 2 x 2.1 GB); biases stay f32; NF4 linears as loaded.
//
// Three ways to get one:
//   modelFromLoaded     the QLoRA model of loader.ts (NF4 linears): training and chat;
//   modelFromReader     an f32/f16/bf16 checkpoint read as it is, dense linears: parity with
//                       transformers (which runs the same unquantized weights);
//   dequantizeModel     the NF4 linears of a model dequantized to dense: a check of the fused path.
import { LINEAR_NAMES, linearModulePath, ropeInverseFrequenciesF32, type LinearName, type ModelArch } from './arch.ts';
import type { Kernels } from './kernels.ts';
import type { LinearWeight } from './linear.ts';
import type { LoadedModel } from './loader.ts';
import { dequantizeNf4Gpu } from './nf4.ts';
import { embeddingDtypeFor } from './planner.ts';
import { readTensor, uploadTensor, type DType, type Tensor } from './tensor.ts';
import type { TensorReader } from '../io/safetensors.ts';

export interface LayerWeights {
  /** input_layernorm [H], activation dtype. */
  inputNorm: Tensor;
  /** post_attention_layernorm [H], activation dtype. */
  postNorm: Tensor;
  /** Qwen3: self_attn.q_norm / k_norm [headDim], activation dtype. */
  qNorm?: Tensor;
  kNorm?: Tensor;
  linears: Record<LinearName, LinearWeight>;
}

export interface ModelWeights {
  arch: ModelArch;
  /** Storage type of activations (and of the norm weights): the "one switch". */
  dtype: DType;
  /** Storage type of embed_tokens and lm_head (f32 or f16, whatever `dtype` is). */
  embedDtype: DType;
  /** embed_tokens [V, H], embedDtype. */
  embed: Tensor;
  /** lm_head [V, H], embedDtype: `embed` itself when the embeddings are tied. */
  lmHead: Tensor;
  /** model.norm [H], activation dtype. */
  finalNorm: Tensor;
  /** RoPE inv_freq [headDim / 2] f32, the model's scaling applied. */
  invFreq: Tensor;
  layers: LayerWeights[];
  /** Buffers made here (destroyModelWeights frees them); the LoadedModel's stay its own. */
  owned: GPUBuffer[];
}

export interface ModelOptions {
  /** Activation storage; default f16 where the device has shader-f16, else f32. */
  dtype?: DType;
  /** Storage of embed_tokens and lm_head; default: the activation dtype. Training (f32
   * activations) passes embedDtypeFor(kernels), or a LoadedModel's own embeddingDtype (no copy). */
  embedDtype?: DType;
}

/** The activation dtype a model gets by default on this device. */
export function defaultDtype(kernels: Kernels): DType {
  return kernels.gpu.info.f16 ? 'f16' : 'f32';
}

/** The embedding/lm_head storage of a training run on this device: f16 where it has shader-f16
 * (whatever the activation dtype), else f32: the planner's rule (planner.ts embeddingDtypeFor),
 * and the loader's default embeddingDtype. */
export function embedDtypeFor(kernels: Kernels): DType {
  return embeddingDtypeFor(kernels.gpu.info);
}

function resolveDtypes(kernels: Kernels, opts: ModelOptions): { dtype: DType; embedDtype: DType } {
  const dtype = opts.dtype ?? defaultDtype(kernels);
  const embedDtype = opts.embedDtype ?? dtype;
  for (const [what, t] of [['activations', dtype], ['embeddings', embedDtype]] as const) {
    if (t === 'f16' && !kernels.gpu.info.f16) throw new Error(`model: f16 ${what} need shader-f16, which this device lacks`);
  }
  return { dtype, embedDtype };
}

/** The forward's view of a loaded (NF4) model. Norms, and the embedding / lm_head when their
 * dtype differs from the loaded one (loaded.embeddingDtype), are converted into new buffers
 * (owned); the rest is shared. */
export async function modelFromLoaded(kernels: Kernels, loaded: LoadedModel, opts: ModelOptions = {}): Promise<ModelWeights> {
  const { arch } = loaded;
  const { dtype, embedDtype } = resolveDtypes(kernels, opts);
  const owned: GPUBuffer[] = [];
  const dense = (name: string): Tensor => {
    const t = loaded.dense.get(name);
    if (!t) throw new Error(`model: the loaded model has no ${name}`);
    return t;
  };
  const inDtype = async (name: string, as: DType = dtype): Promise<Tensor> => {
    const t = dense(name);
    if (t.dtype === as) return t;
    // A one-time copy through the CPU (norms are tiny; an embedding is converted only when the
    // model was loaded with an embedding dtype other than the one asked for).
    const c = uploadTensor(kernels.device, await readTensor(kernels.device, t), t.shape, as, name, 'weights-dense');
    owned.push(c.buffer);
    return c;
  };
  const embed = await inDtype('model.embed_tokens.weight', embedDtype);
  const lmHead = arch.tiedEmbeddings ? embed : await inDtype('lm_head.weight', embedDtype);
  const layers: LayerWeights[] = [];
  for (let i = 0; i < arch.layers; i++) {
    const p = `model.layers.${i}`;
    const linears = {} as Record<LinearName, LinearWeight>;
    for (const spec of arch.linears) {
      const path = linearModulePath(i, spec);
      const w = loaded.nf4.get(`${path}.weight`);
      if (!w) throw new Error(`model: the loaded model has no NF4 ${path}.weight`);
      linears[spec.name] = { kind: 'nf4', w, bias: spec.bias ? dense(`${path}.bias`) : undefined };
    }
    layers.push({
      inputNorm: await inDtype(`${p}.input_layernorm.weight`),
      postNorm: await inDtype(`${p}.post_attention_layernorm.weight`),
      qNorm: arch.qkNorm ? await inDtype(`${p}.self_attn.q_norm.weight`) : undefined,
      kNorm: arch.qkNorm ? await inDtype(`${p}.self_attn.k_norm.weight`) : undefined,
      linears,
    });
  }
  const finalNorm = await inDtype('model.norm.weight');
  const invFreq = uploadInvFreq(kernels, arch);
  owned.push(invFreq.buffer);
  return { arch, dtype, embedDtype, embed, lmHead, finalNorm, invFreq, layers, owned };
}

/** A model with dense linears in the activation dtype, read from a checkpoint as it is (no NF4):
 * what transformers runs, for parity tests. Embeddings in embedDtype, biases f32. */
export async function modelFromReader(kernels: Kernels, arch: ModelArch, reader: TensorReader, opts: ModelOptions = {}): Promise<ModelWeights> {
  const { dtype, embedDtype } = resolveDtypes(kernels, opts);
  const owned: GPUBuffer[] = [];
  const upload = async (name: string, shape: number[], as: DType = dtype): Promise<Tensor> => {
    const info = reader.get(name);
    if (info.shape.join() !== shape.join()) throw new Error(`model: ${name} has shape [${info.shape}], expected [${shape}]`);
    const t = uploadTensor(kernels.device, await reader.readF32(name), shape, as, name, 'weights-dense');
    owned.push(t.buffer);
    return t;
  };
  const { hidden: H, vocabSize: V } = arch;
  const embed = await upload('model.embed_tokens.weight', [V, H], embedDtype);
  const lmHead = arch.tiedEmbeddings ? embed : await upload('lm_head.weight', [V, H], embedDtype);
  const layers: LayerWeights[] = [];
  for (let i = 0; i < arch.layers; i++) {
    const p = `model.layers.${i}`;
    const linears = {} as Record<LinearName, LinearWeight>;
    for (const spec of arch.linears) {
      const path = linearModulePath(i, spec);
      const w = await upload(`${path}.weight`, [spec.out, spec.in]);
      linears[spec.name] = { kind: 'dense', w, bias: spec.bias ? await upload(`${path}.bias`, [spec.out], 'f32') : undefined };
    }
    layers.push({
      inputNorm: await upload(`${p}.input_layernorm.weight`, [H]),
      postNorm: await upload(`${p}.post_attention_layernorm.weight`, [H]),
      qNorm: arch.qkNorm ? await upload(`${p}.self_attn.q_norm.weight`, [arch.headDim]) : undefined,
      kNorm: arch.qkNorm ? await upload(`${p}.self_attn.k_norm.weight`, [arch.headDim]) : undefined,
      linears,
    });
  }
  const finalNorm = await upload('model.norm.weight', [H]);
  const invFreq = uploadInvFreq(kernels, arch);
  owned.push(invFreq.buffer);
  return { arch, dtype, embedDtype, embed, lmHead, finalNorm, invFreq, layers, owned };
}

/** The same model with every NF4 linear dequantized (on the GPU) to a dense one in the activation
 * dtype. Shares everything else with `m`; only the dense linears are owned by the result. */
export function dequantizeModel(kernels: Kernels, m: ModelWeights): ModelWeights {
  const owned: GPUBuffer[] = [];
  const layers = m.layers.map((layer) => {
    const linears = {} as Record<LinearName, LinearWeight>;
    for (const name of LINEAR_NAMES) {
      const l = layer.linears[name];
      if (l.kind === 'nf4') {
        const w = dequantizeNf4Gpu(kernels, l.w, m.dtype);
        owned.push(w.buffer);
        linears[name] = { kind: 'dense', w, bias: l.bias };
      } else linears[name] = l;
    }
    return { ...layer, linears };
  });
  return { ...m, layers, owned };
}

/** Frees the buffers the ModelWeights made (not those of the LoadedModel it came from). */
export function destroyModelWeights(m: ModelWeights): void {
  for (const b of m.owned) b.destroy();
  m.owned.length = 0;
}

function uploadInvFreq(kernels: Kernels, arch: ModelArch): Tensor {
  const inv = ropeInverseFrequenciesF32(arch);
  return uploadTensor(kernels.device, inv, [inv.length], 'f32', 'rope.inv_freq', 'weights-dense');
}
