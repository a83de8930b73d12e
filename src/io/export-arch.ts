// What the exporters need to know about a model: the fields of src/engine/arch.ts's ModelArch that
// the file formats use. Declared here (structurally) because src/io sits below src/engine: callers
// pass their ModelArch as it is.

export type ExportRopeScaling =
  | { type: 'none' }
  | { type: 'linear'; factor: number }
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositions: number };

export interface ExportLinear {
  /** q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj */
  readonly name: string;
  /** self_attn or mlp */
  readonly module: string;
  readonly out: number;
  readonly in: number;
  readonly bias: boolean;
}

export interface ExportArch {
  /** llama | mistral | qwen2 | qwen3 */
  readonly family: string;
  readonly vocabSize: number;
  readonly hidden: number;
  readonly intermediate: number;
  readonly layers: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly rmsNormEps: number;
  readonly ropeTheta: number;
  readonly ropeScaling: ExportRopeScaling;
  readonly maxPositions: number;
  readonly tiedEmbeddings: boolean;
  readonly qkNorm: boolean;
  readonly slidingWindow?: number | null;
  readonly linears: readonly ExportLinear[];
}

/** The module path of a decoder-layer linear: "model.layers.3.self_attn.q_proj". */
export function linearPath(layer: number, l: Pick<ExportLinear, 'module' | 'name'>): string {
  return `model.layers.${layer}.${l.module}.${l.name}`;
}

/** f32 weights by transformers state-dict name, in HF layout (row-major [out, in]): a checkpoint
 * being re-read shard by shard, dequantized NF4, or base weights with an adapter merged in. */
export interface WeightSource {
  read(name: string): Promise<Float32Array>;
  /** Optional: rows [start, start + count) of a 2-D tensor, so that exporters can stream tensors
   * too big to hold at once (an 8B model's embedding is 2 GB in f32). */
  readRows?(name: string, start: number, count: number): Promise<Float32Array>;
}
