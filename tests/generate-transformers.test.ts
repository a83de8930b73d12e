// Greedy generation against transformers' greedy `generate` (tools/reference/
// make_generate_fixtures.py: 32 new tokens after a fixed prompt, KV cache, f32 on the CPU) on
// every parity model, with the adapter off and on: the token ids must be identical.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { Generator } from '../src/engine/generate.ts';
import { Kernels } from '../src/engine/kernels.ts';
import { destroyLora, loraFromAdapter } from '../src/engine/lora-weights.ts';
import { destroyModelWeights, modelFromReader } from '../src/engine/model.ts';
import { readParityFixture, VARIANTS } from './forward-helpers.ts';
import { testGpu } from './gpu/device.ts';

interface GenerateFixture {
  prompt: number[];
  max_new_tokens: number;
  eos_token_id: number | number[];
  base: number[];
  lora: number[];
}

let kernels: Kernels;
beforeAll(async () => {
  kernels = new Kernels(await testGpu());
});

/** transformers' output without the stop token it ends with, if any (ours never returns it). */
function untilStop(ids: number[], stop: Set<number>): number[] {
  const at = ids.findIndex((id) => stop.has(id));
  return at < 0 ? ids : ids.slice(0, at);
}

describe.each(VARIANTS)('greedy generate equals transformers (%s, f32)', (variant) => {
  it('adapter off and on', async () => {
    const f = await readParityFixture(variant);
    const want = JSON.parse(readFileSync(join(f.dir, 'generate.json'), 'utf8')) as GenerateFixture;
    const stopIds = [want.eos_token_id].flat();
    const stop = new Set(stopIds);
    const model = await modelFromReader(kernels, f.arch, f.weights, { dtype: 'f32' });
    const lora = loraFromAdapter(kernels.device, f.arch, f.adapter);
    const gen = new Generator(kernels, model, { maxContext: want.prompt.length + want.max_new_tokens + 1, prefillChunk: 8 });
    try {
      for (const [name, set, expected] of [['base', null, want.base], ['lora', lora, want.lora]] as const) {
        const r = await gen.generate(want.prompt, set, { maxNewTokens: want.max_new_tokens, temperature: 0, stopIds });
        expect(r.tokens, `${variant} ${name}`).toEqual(untilStop(expected, stop));
      }
    } finally {
      gen.destroy();
      destroyLora(lora);
      destroyModelWeights(model);
    }
  });
});
