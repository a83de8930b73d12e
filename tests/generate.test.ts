// Generation with the KV cache against the plain forward: decode logits equal a full forward's,
// greedy generation equals greedy argmax over a full forward recomputed each step (NF4 model from
// loadModel, so decode runs the GEMV kernel; chunked prefill; adapter on and off); stops at a stop
// id, at max tokens, at a full context; cancels; sampling is reproducible from its seed.
// Decode-vs-forward logits tolerance 1e-5 of max |logit| in f32 (measured on lavapipe: 0, the
// cached and the full forward give the same bits), 5e-3 in f16.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forwardTensors } from '../src/engine/activations.ts';
import {
  createForwardRun,
  destroyForwardRun,
  encodeForward,
  logitsTensor,
  writeBatch,
  type ForwardRun,
} from '../src/engine/forward.ts';
import { Generator } from '../src/engine/generate.ts';
import { CHAT_SAMPLING } from '../src/engine/sample.ts';
import type { Gpu } from '../src/engine/gpu.ts';
import { Kernels } from '../src/engine/kernels.ts';
import { loadModel, unloadModel, type LoadedModel } from '../src/engine/loader.ts';
import { destroyLora, loraFromAdapter, type LoraSet } from '../src/engine/lora-weights.ts';
import { destroyModelWeights, modelFromLoaded, modelFromReader, type ModelWeights } from '../src/engine/model.ts';
import { readTensor } from '../src/engine/tensor.ts';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseModelConfig } from '../src/engine/arch.ts';
import { loraGemvParts } from '../src/engine/lora.ts';
import { destroyNf4, uploadNf4, type Nf4GpuWeight } from '../src/engine/nf4.ts';
import type { LinearWeight } from '../src/engine/linear.ts';
import { quantizeNf4 } from '../src/io/nf4.ts';
import { gaussian } from './fixtures/gguf/helpers.ts';
import { randomAdapter } from './export-helpers.ts';
import { folderSource, loadDeps, loadParityModel, readParityFixture, relToMax, type ParityFixture } from './forward-helpers.ts';
import { testGpu } from './gpu/device.ts';

const LOGITS_TOL = 1e-5;
const PROMPT = [1, 17, 200, 45, 9, 88, 131, 7, 250, 66];
const MAX_LEN = 32;

let gpu: Gpu;
let kernels: Kernels;
beforeAll(async () => {
  gpu = await testGpu();
  kernels = new Kernels(gpu);
});

/** Logits of the last token of `ids` from a full forward (no cache). */
async function fullForwardLogits(run: ForwardRun, ids: readonly number[]): Promise<Float32Array> {
  const n = ids.length;
  writeBatch(run, { batch: 1, seqLen: n, inputIds: ids, positionIds: ids.map((_, i) => i), segmentIds: ids.map(() => 1) });
  const t = forwardTensors(run.acts, 1, n);
  const out = logitsTensor(run.acts, 1);
  const enc = gpu.device.createCommandEncoder();
  encodeForward(enc, run, t, { logits: { out, firstRow: n - 1 } });
  gpu.device.queue.submit([enc.finish()]);
  return readTensor(gpu.device, out);
}

/** Decode logits (the generator fed PROMPT, then 5, 77, 190 one at a time) against a full forward's, relative to max |logit|, after each feed. */
async function decodeVsFullForward(gen: Generator, run: ForwardRun, lora: LoraSet): Promise<number[]> {
  gen.feed(PROMPT, lora);
  const errs = [relToMax(await gen.readLogits(), await fullForwardLogits(run, PROMPT))];
  const ids = [...PROMPT];
  for (const id of [5, 77, 190]) {
    gen.feed([id], lora);
    ids.push(id);
    errs.push(relToMax(await gen.readLogits(), await fullForwardLogits(run, ids)));
  }
  return errs;
}

function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

/** Greedy decoding by recomputing the full forward every step. */
async function greedyByRecompute(run: ForwardRun, prompt: readonly number[], n: number): Promise<number[]> {
  const ids = [...prompt];
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const id = argmax(await fullForwardLogits(run, ids));
    out.push(id);
    ids.push(id);
  }
  return out;
}

describe('KV-cache decode logits (dense f32 llama3-tied, adapter on)', () => {
  it('equal a full forward after the prompt and after each fed token', async () => {
    const f: ParityFixture = await readParityFixture('llama3-tied');
    const model = await modelFromReader(kernels, f.arch, f.weights, { dtype: 'f32' });
    const lora = loraFromAdapter(gpu.device, f.arch, f.adapter);
    const gen = new Generator(kernels, model, { maxContext: MAX_LEN, prefillChunk: 4 });
    const run = createForwardRun({ kernels, model, lora }, { batch: 1, seqLen: MAX_LEN, loss: false, logitsRows: 1 });
    const errs = await decodeVsFullForward(gen, run, lora);
    console.log(`decode vs full forward: ${errs.map((e) => e.toExponential(2)).join(', ')}`);
    for (const e of errs) expect(e).toBeLessThan(LOGITS_TOL);
    gen.destroy();
    destroyForwardRun(run);
    destroyLora(lora);
    destroyModelWeights(model);
  });
});

describe('generation (NF4 qwen2 from loadModel)', () => {
  let loaded: LoadedModel;
  let model: ModelWeights;
  let lora: LoraSet;
  let gen: Generator;
  let run: ForwardRun;
  const greedy = new Map<string, number[]>();
  beforeAll(async () => {
    const p = await loadParityModel(gpu, kernels, 'qwen2');
    const f = p.f;
    loaded = p.loaded;
    model = await modelFromLoaded(kernels, loaded, { dtype: 'f32' });
    lora = loraFromAdapter(gpu.device, f.arch, f.adapter);
    gen = new Generator(kernels, model, { maxContext: MAX_LEN, prefillChunk: 4, checkReplay: true });
    run = createForwardRun({ kernels, model, lora }, { batch: 1, seqLen: MAX_LEN, loss: false, logitsRows: 1 });
  });
  afterAll(() => {
    gen.destroy();
    destroyForwardRun(run);
    destroyLora(lora);
    destroyModelWeights(model);
    unloadModel(loaded);
  });

  it.each([
    ['adapter on', true],
    ['adapter off', false],
  ])('greedy with the KV cache equals greedy over full forwards (%s)', async (name, on) => {
    const n = 16;
    const set = on ? lora : null;
    const streamed: number[] = [];
    const got = await gen.generate(PROMPT, set, { maxNewTokens: n, onToken: (id, i) => void (streamed[i] = id) });
    const want = await greedyByRecompute({ ...run, ctx: { ...run.ctx, lora: set } }, PROMPT, n);
    expect(got.tokens).toEqual(want);
    expect(streamed).toEqual(want);
    expect(got.stop).toBe('length');
    expect(got.promptTokens).toBe(PROMPT.length);
    greedy.set(name, want);
  });

  it("records no new bind group once warm: the per-token parameters live in buffers, not uniforms (adapter on, the chat's sampling)", async () => {
    // A new bind group (and uniform) per token and layer cost ~50 us of CPU each on the chat path.
    const opts = { maxNewTokens: 12, ...CHAT_SAMPLING, seed: 3 };
    await gen.generate(PROMPT, lora, opts);
    const create = gpu.device.createBindGroup.bind(gpu.device);
    let made = 0;
    gpu.device.createBindGroup = (d: GPUBindGroupDescriptor) => {
      made++;
      return create(d);
    };
    try {
      const got = await gen.generate(PROMPT, lora, opts);
      expect(got.tokens).toHaveLength(12);
    } finally {
      gpu.device.createBindGroup = create;
    }
    expect(made).toBe(0);
  });

  it('replays decode steps across the attention\'s split boundary as it would record them, with the tokens of greedy by recompute', async () => {
    // Decode steps replay their first capture (generate.ts `steps`); checkReplay records each one
    // afresh too and throws where they differ. Positions 10 .. 150 cross a split of 128 keys.
    const len = 150;
    const long = new Generator(kernels, model, { maxContext: len, prefillChunk: 8, checkReplay: true });
    const longRun = createForwardRun({ kernels, model, lora }, { batch: 1, seqLen: len, loss: false, logitsRows: 1 });
    try {
      const n = len - PROMPT.length;
      const got = await long.generate(PROMPT, lora, { maxNewTokens: n });
      expect(got.tokens).toEqual(await greedyByRecompute(longRun, PROMPT, n));
    } finally {
      long.destroy();
      destroyForwardRun(longRun);
    }
  });

  it('the adapter changes the answer', () => {
    expect(greedy.get('adapter on')).not.toEqual(greedy.get('adapter off'));
  });

  it('stops at a stop id (not streamed, not returned)', async () => {
    const want = greedy.get('adapter on')!;
    const stopId = want[5];
    const k = want.indexOf(stopId);
    const streamed: number[] = [];
    const got = await gen.generate(PROMPT, lora, { maxNewTokens: 16, stopIds: [stopId], onToken: (id) => void streamed.push(id) });
    expect(got.stop).toBe('eos');
    expect(got.stopId).toBe(stopId);
    expect(got.tokens).toEqual(want.slice(0, k));
    expect(streamed).toEqual(want.slice(0, k));
  });

  it('cancels through an AbortSignal', async () => {
    const ctrl = new AbortController();
    const got = await gen.generate(PROMPT, lora, {
      maxNewTokens: 16,
      signal: ctrl.signal,
      onToken: (_, i) => {
        if (i === 2) ctrl.abort();
      },
    });
    expect(got.stop).toBe('aborted');
    expect(got.tokens).toEqual(greedy.get('adapter on')!.slice(0, 3));
    const none = await gen.generate(PROMPT, lora, { maxNewTokens: 16, signal: ctrl.signal });
    expect(none).toMatchObject({ stop: 'aborted', tokens: [] });
  });

  it('stops when the context is full', async () => {
    const got = await gen.generate(PROMPT, lora, { maxNewTokens: 100 });
    expect(got.stop).toBe('context');
    expect(got.tokens.length).toBe(MAX_LEN - PROMPT.length + 1);
    expect(got.tokens.slice(0, 16)).toEqual(greedy.get('adapter on'));
    await expect(gen.generate(Array(MAX_LEN).fill(3), lora, { maxNewTokens: 1 })).rejects.toThrow(/context/);
  });

  it('samples reproducibly from a seed (temperature, top-k, top-p, repetition penalty)', async () => {
    const opts = { maxNewTokens: 12, temperature: 1.3, topK: 40, topP: 0.9, repetitionPenalty: 1.2 };
    const a = await gen.generate(PROMPT, lora, { ...opts, seed: 7 });
    const b = await gen.generate(PROMPT, lora, { ...opts, seed: 7 });
    const c = await gen.generate(PROMPT, lora, { ...opts, seed: 8 });
    expect(a.tokens).toEqual(b.tokens);
    expect(a.tokens).toHaveLength(12);
    expect(a.tokens.every((id) => id >= 0 && id < model.arch.vocabSize)).toBe(true);
    expect(c.tokens).not.toEqual(a.tokens);
  });
});

describe('generation on the demo model (NF4, default dtype)', () => {
  it('decode logits follow a full forward and greedy decoding matches it', async () => {
    const { source, fetch } = folderSource('public/demo/model', 'webtune/demo-tiny-llama');
    const loaded = await loadModel(loadDeps(gpu, kernels, fetch), source);
    const model = await modelFromLoaded(kernels, loaded);
    const gen = new Generator(kernels, model, { maxContext: MAX_LEN, checkReplay: true });
    const run = createForwardRun({ kernels, model, lora: null }, { batch: 1, seqLen: MAX_LEN, loss: false, logitsRows: 1 });
    const prompt = [508, 509, 300, 301, 302, 510, 509];
    gen.feed(prompt, null);
    const err = relToMax(await gen.readLogits(), await fullForwardLogits(run, prompt));
    const got = await gen.generate(prompt, null, { maxNewTokens: 8 });
    const want = await greedyByRecompute(run, prompt, 8);
    console.log(`demo ${model.dtype}: prefill logits vs full forward ${err.toExponential(2)}; greedy ${got.tokens.join(' ')}`);
    expect(err).toBeLessThan(model.dtype === 'f16' ? 5e-3 : LOGITS_TOL);
    expect(got.tokens).toEqual(want);
    gen.destroy();
    destroyForwardRun(run);
    destroyModelWeights(model);
    unloadModel(loaded);
  });
});

// Decode's long rows: a down_proj K over 4096 takes its LoRA u in parts of K (lora.ts
// loraGemvParts), summed by the GEMV. The qwen2 fixture with its MLP widened to 4160 (random NF4
// gate/up/down, a random adapter on every linear): decode logits against the full forward's, which
// multiplies the same weights through the tiled kernels.
describe('KV-cache decode with a down_proj of K 4160 (u in parts), adapter on', () => {
  it('equals a full forward after the prompt and after each fed token', async () => {
    const { f, loaded } = await loadParityModel(gpu, kernels, 'qwen2');
    const base = await modelFromLoaded(kernels, loaded, { dtype: 'f32' });
    const I = 4160;
    expect(loraGemvParts(I)).toBe(2);
    const config = JSON.parse(readFileSync(join(f.dir, 'config.json'), 'utf8'));
    const arch = parseModelConfig({ ...config, intermediate_size: I });
    const owned: Nf4GpuWeight[] = [];
    const nf4 = (out: number, inp: number, seed: number): LinearWeight => {
      const w = uploadNf4(gpu.device, quantizeNf4(gaussian(out * inp, seed, 1 / Math.sqrt(inp)), { shape: [out, inp], blocksize: 64 }));
      owned.push(w);
      return { kind: 'nf4', w };
    };
    const H = arch.hidden;
    const layers = base.layers.map((l, i) => ({
      ...l,
      linears: { ...l.linears, gate_proj: nf4(I, H, 900 + 3 * i), up_proj: nf4(I, H, 901 + 3 * i), down_proj: nf4(H, I, 902 + 3 * i) },
    }));
    const model: ModelWeights = { ...base, arch, layers };
    const lora = loraFromAdapter(gpu.device, arch, randomAdapter(arch, 77));
    const gen = new Generator(kernels, model, { maxContext: MAX_LEN, prefillChunk: 4, checkReplay: true });
    const run = createForwardRun({ kernels, model, lora }, { batch: 1, seqLen: MAX_LEN, loss: false, logitsRows: 1 });
    try {
      const errs = await decodeVsFullForward(gen, run, lora);
      console.log(`decode (down_proj K ${I}, u in parts) vs full forward: ${errs.map((e) => e.toExponential(2)).join(', ')}`);
      for (const e of errs) expect(e).toBeLessThan(LOGITS_TOL);
    } finally {
      gen.destroy();
      destroyForwardRun(run);
      destroyLora(lora);
      for (const w of owned) destroyNf4(w);
      destroyModelWeights(base);
      unloadModel(loaded);
    }
  });
});
