// The forward over NF4 weights (the QLoRA path, as loadModel makes it): equal to the forward over
// the same NF4 weights dequantized to dense linears, on the tiled kernel (packed rows) and on the
// GEMV kernel (a few tokens), with Qwen2's biases (fused into the NF4 matmul, a separate dispatch
// on the dense path) and the adapter on; and the demo model loads and gives finite logits.
// The NF4 matmul's own correctness against its float64 reference is tests/nf4-matmul.test.ts.
//
// Tolerances (max |got - want| / max |want|): f32 1e-5 (measured on lavapipe: 0 tiled, 3.7e-7
// GEMV); f16 5e-3: the dequantized dense weights are rounded to f16 while the fused kernel keeps
// code · absmax in f32 (measured 6.7e-4).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createForwardRun, destroyForwardRun, forwardBatch, type PackedBatch } from '../src/engine/forward.ts';
import type { Gpu } from '../src/engine/gpu.ts';
import { Kernels } from '../src/engine/kernels.ts';
import { loadModel, unloadModel, type LoadedModel } from '../src/engine/loader.ts';
import { destroyLora, loraFromAdapter, type LoraSet } from '../src/engine/lora-weights.ts';
import { dequantizeModel, destroyModelWeights, modelFromLoaded, type ModelWeights } from '../src/engine/model.ts';
import type { DType } from '../src/engine/tensor.ts';
import { folderSource, loadDeps, loadParityModel, relToMax, type ParityFixture } from './forward-helpers.ts';
import { testGpu } from './gpu/device.ts';

const TOL: Record<DType, number> = { f32: 1e-5, f16: 5e-3 };

let gpu: Gpu;
let kernels: Kernels;
beforeAll(async () => {
  gpu = await testGpu();
  kernels = new Kernels(gpu);
});

describe('NF4 forward', () => {
  let f: ParityFixture;
  let loaded: LoadedModel;
  let lora: LoraSet;
  const models: ModelWeights[] = [];
  beforeAll(async () => {
    ({ f, loaded } = await loadParityModel(gpu, kernels, 'qwen2'));
    lora = loraFromAdapter(gpu.device, f.arch, f.adapter);
  });
  afterAll(() => {
    for (const m of models) destroyModelWeights(m);
    destroyLora(lora);
    unloadModel(loaded);
  });

  const cases: { name: string; batch: () => PackedBatch }[] = [
    {
      name: 'packed rows (tiled kernel)',
      batch: () => ({ batch: f.batch, seqLen: f.seqLen, inputIds: f.inputIds, positionIds: f.positionIds, segmentIds: f.segmentIds }),
    },
    {
      name: 'one prompt of 6 tokens (GEMV kernel)',
      batch: () => ({ batch: 1, seqLen: 6, inputIds: f.inputIds.slice(0, 6), positionIds: [0, 1, 2, 3, 4, 5], segmentIds: [1, 1, 1, 1, 1, 1] }),
    },
  ];

  it.each(cases)('equals the dequantized dense forward: $name', async ({ name, batch }) => {
    const b = batch();
    for (const dtype of (gpu.info.f16 ? ['f32', 'f16'] : ['f32']) as DType[]) {
      const nf4 = await modelFromLoaded(kernels, loaded, { dtype });
      const dense = dequantizeModel(kernels, nf4);
      models.push(nf4, dense);
      expect(nf4.layers[0].linears.q_proj.kind).toBe('nf4');
      expect(dense.layers[0].linears.q_proj.kind).toBe('dense');
      const opts = { batch: b.batch, seqLen: b.seqLen, logitsRows: b.batch * b.seqLen };
      const a = createForwardRun({ kernels, model: nf4, lora }, opts);
      const d = createForwardRun({ kernels, model: dense, lora }, opts);
      const got = await forwardBatch(a, b, { logits: true });
      const want = await forwardBatch(d, b, { logits: true });
      destroyForwardRun(a);
      destroyForwardRun(d);
      const err = relToMax(got.logits!, want.logits!);
      console.log(`nf4 vs dequantized dense, ${name}, ${dtype}: ${err.toExponential(2)}`);
      expect(got.logits!.every(Number.isFinite)).toBe(true);
      expect(err).toBeLessThan(TOL[dtype]);
      // NF4 is not the original: the quantized model differs from transformers' by far more
      if (b.batch === f.batch) expect(relToMax(got.logits!, f.logitsLora)).toBeGreaterThan(1e-3);
    }
  });
});

describe('the demo model', () => {
  it('loads with loadModel and gives finite logits and loss', async () => {
    const { source, fetch } = folderSource('public/demo/model', 'webtune/demo-tiny-llama');
    const loaded = await loadModel(loadDeps(gpu, kernels, fetch), source);
    const model = await modelFromLoaded(kernels, loaded);
    const { arch } = model;
    const T = 24;
    const ids = Array.from({ length: T }, (_, i) => (i * 37 + 5) % arch.vocabSize);
    const run = createForwardRun({ kernels, model, lora: null }, { batch: 1, seqLen: T, logitsRows: T });
    const out = await forwardBatch(run, { batch: 1, seqLen: T, inputIds: ids, positionIds: ids.map((_, i) => i), segmentIds: ids.map(() => 1) }, { logits: true, loss: true });
    expect(model.dtype).toBe(gpu.info.f16 ? 'f16' : 'f32');
    expect(out.logits!.length).toBe(T * arch.vocabSize);
    expect(out.logits!.every(Number.isFinite)).toBe(true);
    expect(out.trainedTokens).toBe(T - 1);
    // an untrained-on sequence: the loss is near ln(V), certainly finite and positive
    expect(out.loss!).toBeGreaterThan(0);
    expect(out.loss!).toBeLessThan(3 * Math.log(arch.vocabSize));
    destroyForwardRun(run);
    destroyModelWeights(model);
    unloadModel(loaded);
  });
});
