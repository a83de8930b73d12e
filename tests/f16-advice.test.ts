// The Model tab's advice for an NVIDIA GPU without shader-f16: when it appears, the flags it
// names, and the memory it promises (the planner's own difference for the 8B preset).
import { describe, expect, it } from 'vitest';
import { CHROME_F16_FLAGS, f16Advice, f16Saving, TENSOR_CORE_GAIN } from '../src/ui/model/f16-advice.ts';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatBytes } from '../src/util/format.ts';

const limits = { maxStorageBufferBindingSize: 2 ** 31 - 4, maxBufferSize: 2 ** 40, maxComputeWorkgroupStorageSize: 32768 } as never;
const gpu = (vendor: string, f16: boolean, description = '') => ({ vendor, description, f16, limits });

describe('f16 advice on the Model tab', () => {
  it('speaks only for an NVIDIA adapter without shader-f16', () => {
    expect(f16Advice(gpu('nvidia', false))).toContain(CHROME_F16_FLAGS);
    expect(f16Advice(gpu('', false, 'NVIDIA GeForce RTX 4090'))).toContain('vulkan_enable_f16_on_nvidia');
    expect(f16Advice(gpu('nvidia', true))).toBeNull();
    expect(f16Advice(gpu('amd', false))).toBeNull();
    expect(f16Advice(gpu('mesa', false, 'llvmpipe'))).toBeNull();
  });

  it("promises the planner's saving for Llama 3.1 8B: f16 embeddings and lm_head (2 x 128256 x 4096 x 2 bytes)", () => {
    const s = f16Saving(gpu('nvidia', false));
    expect(s.label).toMatch(/8B/);
    // embed_tokens and lm_head, each [128256, 4096], at 2 bytes instead of 4: at least that.
    expect(s.bytes).toBeGreaterThanOrEqual(2 * 128256 * 4096 * 2);
    expect(s.bytes).toBeLessThan(4 * 128256 * 4096 * 2);
    expect(f16Advice(gpu('nvidia', false))).toContain(`${formatBytes(s.bytes)} less for ${s.label}`);
  });

  it('quotes the tensor-core gain the benchmark files recorded (the same 1B shape without and with them)', () => {
    const model = (file: string) => {
      const bench = JSON.parse(readFileSync(join(import.meta.dirname, '..', file), 'utf8')) as { results: { op: string; shape: string; trainTokensPerSecond: number; prefillTokensPerSecond: number }[] };
      return bench.results.find((r) => r.op === 'model' && r.shape === '1b')!;
    };
    const [without, withTc] = TENSOR_CORE_GAIN.files.map(model);
    expect(TENSOR_CORE_GAIN.train).toEqual([Math.round(without.trainTokensPerSecond), Math.round(withTc.trainTokensPerSecond)]);
    expect(TENSOR_CORE_GAIN.prefill).toEqual([Math.round(without.prefillTokensPerSecond), Math.round(withTc.prefillTokensPerSecond)]);
    expect(f16Advice(gpu('nvidia', false))).toContain(`from ${TENSOR_CORE_GAIN.train[0]} to ${TENSOR_CORE_GAIN.train[1]} tokens/s`);
  });
});
