// The sampler (shaders/sample.wgsl) alone, one row of Llama 3's vocabulary: greedy and the chat
// tab's draw (temperature 0.7, top-p 0.9, repetition penalty 1.1 over 64 ids), on two kinds of
// logits. The model bench's decode profile times it on a random-weight model's logits, which are
// flatter than a trained model's: top-p's cost depends on how many tokens sit near the maximum.
//   peaked  a trained model's shape: a few tokens a few units above a long tail (standard normal
//           noise times 2, then 8 tokens raised by 8 to 14)
//   flat    standard normal noise times 0.5: the nucleus is most of the vocabulary
import type { Gpu } from '../../src/engine/gpu.ts';
import type { Kernels } from '../../src/engine/kernels.ts';
import { createSampleOutput, createSampleScratch, encodeSample, type SampleOptions } from '../../src/engine/sample.ts';
import { uploadTensor, uploadU32 } from '../../src/engine/tensor.ts';
import { randomF32 } from '../../src/util/random.ts';
import { timePass } from './timing.ts';

export interface SampleBenchResult {
  op: 'sample';
  logits: 'peaked' | 'flat';
  mode: 'greedy' | 'chat';
  vocab: number;
  ms: number;
}

const CHAT: SampleOptions = { temperature: 0.7, topP: 0.9, repetitionPenalty: 1.1 };

function logitsOf(kind: SampleBenchResult['logits'], vocab: number): Float32Array {
  const noise = randomF32(vocab, 11);
  if (kind === 'flat') return noise.map((v) => v * 0.5);
  const x = noise.map((v) => v * 2);
  for (let i = 0; i < 8; i++) x[(i * 7919) % vocab] += 8 + (6 * i) / 7;
  return x;
}

export async function benchSample(gpu: Gpu, kernels: Kernels, vocab: number, repeats: number): Promise<SampleBenchResult[]> {
  const device = gpu.device;
  const results: SampleBenchResult[] = [];
  const prev = uploadU32(device, Array.from({ length: 64 }, (_, i) => (i * 131) % vocab), 'bench.sample.prev');
  const u = uploadTensor(device, Float32Array.of(0.37), [1], 'f32', 'bench.sample.u');
  const out = createSampleOutput(device, 1);
  const scratch = createSampleScratch(kernels, 1, vocab);
  for (const kind of ['peaked', 'flat'] as const) {
    const logits = uploadTensor(device, logitsOf(kind, vocab), [vocab], 'f32', 'bench.sample.logits');
    for (const [mode, opts] of [['greedy', { temperature: 0 }], ['chat', CHAT]] as const) {
      const seconds = await timePass(gpu, repeats, (pass) => encodeSample(kernels, pass, logits, prev, u, out, scratch, opts));
      const r: SampleBenchResult = { op: 'sample', logits: kind, mode, vocab, ms: seconds * 1e3 };
      results.push(r);
      console.log(`sample ${mode} on ${kind} logits, V ${vocab}: ${r.ms.toFixed(3)} ms`);
    }
    logits.buffer.destroy();
  }
  for (const b of [prev.buffer, u.buffer, out.buffer, scratch.buffer]) b.destroy();
  return results;
}
