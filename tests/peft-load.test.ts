// Our exports against real PEFT and transformers (the export issue's load check). For each parity
// model, tools/reference/peft_load_make.ts wrote our PEFT adapter and our merged bf16 model to
// tests/fixtures/peft-load/<variant>/ through the trainer's export path (exportLoaded);
// tools/reference/peft_load_check.py loaded them with PeftModel.from_pretrained (on the parity
// base) and AutoModelForCausalLM.from_pretrained, failing on any missing or unexpected key, and
// recorded transformers' logits (<variant>/torch-logits.safetensors, float32 on the CPU) and
// torch-check.json (versions, dtypes, command, sha256 of the files it read).
//
// Here:
//   - the exports are made again with the current code and must equal the committed files byte for
//     byte (the adapter README's date aside), so that the torch result stays about our code;
//   - our engine's f32 logits of base + adapter (the committed adapter read with our reader) and of
//     the merged bf16 model against transformers': max |ours - theirs| / max |theirs| <= 1e-4
//     (adapter), 1e-3 (merged). The merged folder is read as the loader reads a model (its files,
//     config.json, the safetensors reader) into dense f32 linears: loadModel itself quantizes
//     linears to NF4, so it is only checked to take the folder without a warning;
//   - not hollow: the torch files are of these inputs and these committed files (sha256), the base
//     without the adapter is far from PEFT's logits, and transformers' own merged model gives PEFT's
//     logits to bf16 rounding (so the merge itself is right, not only its file format).
// The torch comparisons are skipped until the script's output is in the fixture folder.
//
// Measured on lavapipe (Mesa 25), worst over the five variants and both sequences:
//   ours alone: merged bf16 vs base + adapter 5.1e-3; base vs base + adapter 0.87 (the adapter matters);
//   against transformers (torch 2.11, transformers 5.17, peft 0.21, H200 host's CPU, 2026-11-29):
//   base 3.2e-7, base + adapter vs PeftModel 5.6e-7, merged vs AutoModelForCausalLM 4.7e-7;
//   transformers' own merged bf16 vs PEFT 5.1e-3; our base vs PEFT 0.87 or more.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseModelConfig, type ModelArch } from '../src/engine/arch.ts';
import { createForwardRun, destroyForwardRun, forwardBatch } from '../src/engine/forward.ts';
import type { Gpu } from '../src/engine/gpu.ts';
import { Kernels } from '../src/engine/kernels.ts';
import { loadModel, unloadModel } from '../src/engine/loader.ts';
import { destroyLora, loraFromAdapter, type LoraSet } from '../src/engine/lora-weights.ts';
import { destroyModelWeights, modelFromReader, type ModelWeights } from '../src/engine/model.ts';
import { openModelFiles } from '../src/io/model-source.ts';
import { readPeftAdapter } from '../src/io/peft.ts';
import { openSafetensors, type SafetensorsFile } from '../src/io/safetensors.ts';
import { INPUTS, PEFT_LOAD_DIR, VARIANTS, exportVariant, inputsJson, withoutDate, type ParityVariant } from '../tools/reference/peft_load_make.ts';
import { folderSource, loadDeps, relToMax } from './forward-helpers.ts';
import { PARITY, firstDiff, openFile } from './fixtures/gguf/helpers.ts';
import { testGpu } from './gpu/device.ts';

const TOL = { adapter: 1e-4, merged: 1e-3 };
/** A merged bf16 model against the unmerged adapter: the weights' bf16 rounding (measured 5.1e-3). */
const BF16_MERGE_TOL = 2e-2;
const SUMMARY = join(PEFT_LOAD_DIR, 'torch-check.json');
const torchLogitsPath = (v: ParityVariant) => join(PEFT_LOAD_DIR, v, 'torch-logits.safetensors');
const NO_TORCH =
  !existsSync(SUMMARY) || VARIANTS.some((v) => !existsSync(torchLogitsPath(v)))
    ? 'no transformers logits yet: run tools/reference/peft_load_check.py (torch, transformers, peft; see its header) and put its output in tests/fixtures/peft-load/'
    : null;

let gpu: Gpu;
let kernels: Kernels;
beforeAll(async () => {
  gpu = await testGpu();
  kernels = new Kernels(gpu);
});

/** Our f32 logits [n, V] of one sequence run alone (positions from 0). */
async function logitsOf(model: ModelWeights, lora: LoraSet | null, ids: readonly number[]): Promise<Float32Array> {
  const n = ids.length;
  const run = createForwardRun({ kernels, model, lora }, { batch: 1, seqLen: n, logitsRows: n, loss: false, checkpoints: false });
  try {
    const r = await forwardBatch(run, { batch: 1, seqLen: n, inputIds: ids, positionIds: ids.map((_, i) => i), segmentIds: ids.map(() => 1) }, { logits: true });
    return r.logits!;
  } finally {
    destroyForwardRun(run);
  }
}

interface Ours {
  base: Float32Array[];
  adapter: Float32Array[];
  merged: Float32Array[];
}

/** Our engine's logits for every input sequence: base, base + the committed adapter, merged. */
async function ourLogits(variant: ParityVariant): Promise<Ours> {
  const dir = join(PEFT_LOAD_DIR, variant);
  const arch: ModelArch = parseModelConfig(JSON.parse(readFileSync(join(PARITY, variant, 'config.json'), 'utf8')));
  const base = await modelFromReader(kernels, arch, await openFile(join(PARITY, variant, 'model.safetensors')), { dtype: 'f32' });
  const { adapter, warnings } = await readPeftAdapter(
    { config: readFileSync(join(dir, 'adapter/adapter_config.json'), 'utf8'), weights: new Uint8Array(readFileSync(join(dir, 'adapter/adapter_model.safetensors'))) },
    arch,
  );
  expect(warnings).toEqual([]);
  const lora = loraFromAdapter(gpu.device, arch, adapter);
  // The merged folder as the loader reads a model: its files, config.json, the safetensors.
  const { source, fetch } = folderSource(join(dir, 'merged'), `peft-load/${variant}-merged`);
  const files = await openModelFiles(source, loadDeps(gpu, kernels, fetch));
  const mergedArch = parseModelConfig(JSON.parse(new TextDecoder().decode(await files.bytes('config.json'))));
  const st: SafetensorsFile = await openSafetensors((await files.fetch('model.safetensors')).source);
  expect(new Set(st.tensors.map((t) => t.dtype))).toEqual(new Set(['BF16']));
  const merged = await modelFromReader(kernels, mergedArch, st, { dtype: 'f32' });
  try {
    const out: Ours = { base: [], adapter: [], merged: [] };
    for (const ids of INPUTS.sequences) {
      out.base.push(await logitsOf(base, null, ids));
      out.adapter.push(await logitsOf(base, lora, ids));
      out.merged.push(await logitsOf(merged, null, ids));
    }
    return out;
  } finally {
    destroyLora(lora);
    destroyModelWeights(base);
    destroyModelWeights(merged);
  }
}

const worst = (xs: number[]): number => Math.max(...xs);
const sha256 = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');

/** The files the torch check hashes (peft_load_check.py's `hashed`), by its names for them. */
function hashedFiles(): Map<string, string> {
  const out = new Map<string, string>([['inputs.json', join(PEFT_LOAD_DIR, 'inputs.json')]]);
  for (const v of VARIANTS) {
    for (const f of ['config.json', 'model.safetensors']) out.set(`parity/${v}/${f}`, join(PARITY, v, f));
    for (const kind of ['adapter', 'merged']) {
      for (const f of readdirSync(join(PEFT_LOAD_DIR, v, kind)).sort()) out.set(`${v}/${kind}/${f}`, join(PEFT_LOAD_DIR, v, kind, f));
    }
  }
  return out;
}

it('inputs.json holds the sequences of peft_load_make.ts', () => {
  expect(readFileSync(join(PEFT_LOAD_DIR, 'inputs.json'), 'utf8')).toBe(inputsJson());
});

describe.each(VARIANTS)('%s', (variant) => {
  it('our exporter writes the committed adapter and merged files byte for byte', async () => {
    const out = await exportVariant(gpu, variant);
    for (const [kind, files] of [['adapter', out.adapter], ['merged', out.merged]] as const) {
      const dir = join(PEFT_LOAD_DIR, variant, kind);
      expect(readdirSync(dir).sort(), `${variant}/${kind}`).toEqual([...files.keys()].sort());
      for (const [name, bytes] of files) {
        const at = firstDiff(withoutDate(name, bytes), withoutDate(name, readFileSync(join(dir, name))));
        expect(at, `${variant}/${kind}/${name} differs from the committed file (at byte ${at}): run tools/reference/peft_load_make.ts, then peft_load_check.py`).toBe(-1);
      }
    }
  });
});

describe('our engine on our exports', () => {
  const ours = new Map<ParityVariant, Ours>();
  const get = async (v: ParityVariant): Promise<Ours> => {
    if (!ours.has(v)) ours.set(v, await ourLogits(v));
    return ours.get(v)!;
  };

  it.each(VARIANTS)('%s: the merged bf16 model gives the adapter\'s logits to bf16 rounding; the adapter matters', async (variant) => {
    const o = await get(variant);
    const merged = worst(o.merged.map((m, i) => relToMax(m, o.adapter[i])));
    const effect = worst(o.base.map((b, i) => relToMax(b, o.adapter[i])));
    console.log(`peft-load ${variant} (ours): merged bf16 vs adapter ${merged.toExponential(2)}; base vs adapter ${effect.toExponential(2)}`);
    expect(merged).toBeLessThan(BF16_MERGE_TOL);
    expect(effect).toBeGreaterThan(10 * BF16_MERGE_TOL);
  });

  it.each(VARIANTS)('%s: our loader takes the merged folder as it is (no warnings, no ignored tensors)', async (variant) => {
    const { source, fetch } = folderSource(join(PEFT_LOAD_DIR, variant, 'merged'), `peft-load/${variant}-merged`);
    const loaded = await loadModel(loadDeps(gpu, kernels, fetch), source, { embeddingDtype: 'f32' });
    try {
      expect(loaded.summary.warnings).toEqual([]);
      expect(loaded.summary.ignoredTensors).toEqual([]);
      expect([...loaded.tokenizerFiles.keys()].sort()).toEqual(['generation_config.json', 'tokenizer.json', 'tokenizer_config.json']);
    } finally {
      unloadModel(loaded);
    }
  });

  describe('against transformers and PEFT (torch-logits.safetensors)', () => {
    let summary: { sha256: Record<string, string>; versions: Record<string, string>; command: string; failures: string[]; result: string };
    beforeAll(() => {
      if (!NO_TORCH) summary = JSON.parse(readFileSync(SUMMARY, 'utf8'));
    });

    it.skipIf(NO_TORCH)(`the torch result is about the committed files (sha256 in torch-check.json)${NO_TORCH ? ` — skipped: ${NO_TORCH}` : ''}`, () => {
      expect(summary.failures, 'peft_load_check.py reported failures').toEqual([]);
      expect(summary.result).toBe('ok');
      const local = Object.fromEntries([...hashedFiles()].map(([name, path]) => [name, sha256(path)]));
      expect(summary.sha256, 'the fixtures changed since peft_load_check.py ran: run it again').toEqual(local);
      console.log(`peft-load: torch ${summary.versions.torch}, transformers ${summary.versions.transformers}, peft ${summary.versions.peft}: ${summary.command}`);
    });

    it.skipIf(NO_TORCH).each(VARIANTS)(`%s: ours within ${TOL.adapter} (adapter) and ${TOL.merged} (merged) of transformers; the base is not${NO_TORCH ? ' — skipped: no torch logits yet' : ''}`, async (variant) => {
      const theirs = await openFile(torchLogitsPath(variant));
      const o = await get(variant);
      const err = { base: [] as number[], adapter: [] as number[], merged: [] as number[], baseVsPeft: [] as number[], theirMerged: [] as number[] };
      for (const [i, ids] of INPUTS.sequences.entries()) {
        const used = new Int32Array((await theirs.read(`input_ids.${i}`)).slice().buffer);
        expect([...used], `input_ids.${i}`).toEqual(ids);
        const peft = await theirs.readF32(`peft.${i}`);
        expect(peft.length).toBe(ids.length * 256);
        err.base.push(relToMax(o.base[i], await theirs.readF32(`base.${i}`)));
        err.adapter.push(relToMax(o.adapter[i], peft));
        const merged = await theirs.readF32(`merged.${i}`);
        err.merged.push(relToMax(o.merged[i], merged));
        err.theirMerged.push(relToMax(merged, peft));
        err.baseVsPeft.push(relToMax(o.base[i], peft));
      }
      console.log(
        `peft-load ${variant} vs torch: base ${worst(err.base).toExponential(2)}, adapter ${worst(err.adapter).toExponential(2)}, ` +
          `merged ${worst(err.merged).toExponential(2)}; their merged bf16 vs peft ${worst(err.theirMerged).toExponential(2)}; our base vs peft ${worst(err.baseVsPeft).toExponential(2)}`,
      );
      expect(worst(err.adapter)).toBeLessThanOrEqual(TOL.adapter);
      expect(worst(err.merged)).toBeLessThanOrEqual(TOL.merged);
      expect(worst(err.base)).toBeLessThanOrEqual(TOL.adapter);
      // transformers' own merged bf16 model gives PEFT's logits to bf16 rounding: the merge is right.
      expect(worst(err.theirMerged)).toBeLessThan(BF16_MERGE_TOL);
      // Not hollow: without the adapter our logits are far from PEFT's.
      expect(worst(err.baseVsPeft)).toBeGreaterThan(100 * TOL.adapter);
    });
  });
});

