// Our exports of the parity models for the PEFT / transformers load check (the export issue):
//
//   npx tsx tools/reference/peft_load_make.ts        (writes tests/fixtures/peft-load/)
//
// For each parity model (tests/fixtures/parity/<variant>: tiny random transformers models) a
// deterministic adapter (seeded Gaussian A and B, r 8, alpha 16, rsLoRA, all seven targets) is put
// on the GPU (Dawn) as a LoRA set and exported by the trainer's own export path (exportLoaded: the
// set read back from the GPU, the base re-read from the checkpoint, the merge in a worker pool):
//   <variant>/adapter/  the PEFT adapter (folder layout: adapter_config.json,
//                       adapter_model.safetensors, README.md)
//   <variant>/merged/   the merged bf16 model (model.safetensors, config.json,
//                       generation_config.json, tokenizer files, README.md)
// and inputs.json holds the token ids the check runs. The parity models have no tokenizer: a
// 256-token byte-level tokenizer.json stands in (a merged export needs one; nothing here reads it).
//
// tools/reference/peft_load_check.py loads these with PeftModel.from_pretrained and
// AutoModelForCausalLM.from_pretrained and records transformers' logits; tests/peft-load.test.ts
// regenerates the files with the current code (byte-identical to the committed ones) and compares
// our engine's logits with transformers'.
//
// The engine's modules import WGSL with Vite's `?raw`; under tsx a small loader hook (below) gives
// them the same strings. They are imported lazily, so that the hook is in place first.

import '../../tests/setup/node-globals.ts'; // Float16Array before webgpu-utils loads
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { register } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseModelConfig, type ModelArch } from '../../src/engine/arch.ts';
import type { Gpu } from '../../src/engine/gpu.ts';
import { MemoryCacheStore, ModelCache } from '../../src/io/cache.ts';
import { openModelFiles, type ModelFiles } from '../../src/io/model-source.ts';
import { loraTargets, type LoraAdapter, type LoraSettings } from '../../src/io/peft.ts';
import { MemorySink } from '../../src/io/sink.ts';
import { PARITY, PARITY_VARIANTS, ROOT, byteTokenizerJson, gaussian, type ParityVariant } from '../../tests/fixtures/gguf/helpers.ts';

export const PEFT_LOAD_DIR = join(ROOT, 'tests/fixtures/peft-load');
export const VARIANTS = PARITY_VARIANTS;
export type { ParityVariant };

export const TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
export const SETTINGS: LoraSettings = { r: 8, loraAlpha: 16, useRslora: true, targetModules: TARGETS };

/** The token ids the check runs, each sequence alone (positions from 0): 24 ids from BOS, and 13. */
export const INPUTS: { sequences: number[][] } = {
  sequences: [
    [1, 87, 14, 203, 55, 9, 178, 240, 33, 121, 66, 199, 5, 142, 87, 230, 18, 77, 251, 40, 163, 96, 12, 210],
    [45, 3, 190, 190, 71, 128, 255, 29, 64, 117, 8, 222, 150],
  ],
};

export function inputsJson(): string {
  return `${JSON.stringify(INPUTS)}\n`;
}

/**
 * The adapter of a variant, like the parity fixtures' (make_llama_fixtures.py): A with the spread of
 * PEFT's Kaiming-uniform init (std 1/sqrt(3·in)) and B ~ N(0, 0.02²) (PEFT starts B at zero: this
 * B makes the adapter matter), Gaussian from a seed per linear and variant.
 */
export function fixtureAdapter(arch: ModelArch, variant: ParityVariant): LoraAdapter {
  const seed = 1000 * (1 + VARIANTS.indexOf(variant));
  const modules = new Map<string, { a: Float32Array; b: Float32Array }>();
  loraTargets(arch, SETTINGS).forEach((t, i) => {
    modules.set(t.path, {
      a: gaussian(SETTINGS.r * t.linear.in, seed + 2 * i, 1 / Math.sqrt(3 * t.linear.in)),
      b: gaussian(t.linear.out * SETTINGS.r, seed + 2 * i + 1, 0.02),
    });
  });
  return { settings: SETTINGS, modules };
}

/** A folder on disk as a model's files (the demo source kind: no Hub, no cache to keep). */
export function folderFiles(dir: string, names: readonly string[], id: string): Promise<ModelFiles> {
  const baseUrl = `http://local.test/${id}/`;
  const fetch = async (url: string): Promise<Response> =>
    url.startsWith(baseUrl) ? new Response(new Uint8Array(readFileSync(join(dir, url.slice(baseUrl.length))))) : new Response('not found', { status: 404 });
  const files = names.map((path) => ({ path, size: statSync(join(dir, path)).size }));
  return openModelFiles({ kind: 'demo', id, name: id, baseUrl, files }, { cache: new ModelCache(new MemoryCacheStore()), fetch });
}

export interface VariantExports {
  /** File name -> bytes, as our export writes them. */
  adapter: Map<string, Uint8Array>;
  merged: Map<string, Uint8Array>;
}

/**
 * The adapter and merged bf16 exports of one variant, through exportLoaded as the trainer worker
 * runs it: a LoRA set on the GPU (read back for the export), the base weights from the checkpoint
 * files, the merge in a worker pool (one worker), files into a memory sink.
 */
export async function exportVariant(gpu: Gpu, variant: ParityVariant): Promise<VariantExports> {
  const { exportLoaded } = await import('../../src/engine/export-run.ts');
  const { destroyLora, loraFromAdapter } = await import('../../src/engine/lora-weights.ts');
  const { createNodeQuantPool } = await import('../../src/io/quant-pool-node.ts');
  const dir = join(PARITY, variant);
  const arch = parseModelConfig(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')));
  const files = await folderFiles(dir, ['config.json', 'model.safetensors'], `webtune/parity-${variant}`);
  const loaded = {
    arch,
    tokenizerFiles: new Map([['tokenizer.json', JSON.stringify(byteTokenizerJson())]]),
    summary: { id: files.id, revision: null, quantization: 'nf4' as const },
  };
  const set = loraFromAdapter(gpu.device, arch, fixtureAdapter(arch, variant));
  const pool = createNodeQuantPool({ size: 1 });
  try {
    const lora = { set, device: gpu.device };
    const adapter = new MemorySink();
    await exportLoaded({ loaded, files, lora, sink: () => adapter }, { kind: 'adapter', adapterLayout: 'folder' });
    const merged = new MemorySink();
    await exportLoaded({ loaded, files, lora, pool, sink: () => merged }, { kind: 'merged', dtype: 'bfloat16' });
    return { adapter: adapter.files, merged: merged.files };
  } finally {
    pool.close();
    destroyLora(set);
  }
}

/** The adapter README says the day it was written: compare without it. */
export function withoutDate(name: string, bytes: Uint8Array): Uint8Array {
  if (name !== 'README.md') return bytes;
  return new TextEncoder().encode(new TextDecoder().decode(bytes).replace(/ on \d{4}-\d{2}-\d{2}\./g, ' on <date>.'));
}

/** Vite's `?raw` import (a file's text as the default export) for Node's loader. */
const RAW_HOOK = `export async function load(url, context, nextLoad) {
  if (!url.endsWith('?raw')) return nextLoad(url, context);
  const { readFile } = await import('node:fs/promises');
  const text = await readFile(new URL(url.slice(0, -'?raw'.length)), 'utf8');
  return { format: 'module', shortCircuit: true, source: 'export default ' + JSON.stringify(text) + ';' };
}`;

/** Writes the files into a folder of just them; a file that differs only in its date is kept as it is
 * (so that the sha256 the torch check recorded stays valid). Returns the paths that changed. */
function writeFolder(dir: string, files: Map<string, Uint8Array>): string[] {
  const changed: string[] = [];
  const write = new Map<string, Uint8Array>();
  for (const [name, bytes] of files) {
    const path = join(dir, name);
    const old = existsSync(path) ? new Uint8Array(readFileSync(path)) : null;
    const same = old !== null && Buffer.from(withoutDate(name, old)).equals(Buffer.from(withoutDate(name, bytes)));
    if (!same) changed.push(path);
    write.set(name, same ? old : bytes);
  }
  for (const name of existsSync(dir) ? readdirSync(dir) : []) if (!files.has(name)) changed.push(`${join(dir, name)} (removed)`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  for (const [name, bytes] of write) writeFileSync(join(dir, name), bytes);
  return changed;
}

async function main(): Promise<void> {
  register(`data:text/javascript,${encodeURIComponent(RAW_HOOK)}`);
  const { getGpu } = await import('../../src/engine/gpu.ts');
  const gpu = await getGpu();
  const changed: string[] = [];
  mkdirSync(PEFT_LOAD_DIR, { recursive: true });
  const inputs = join(PEFT_LOAD_DIR, 'inputs.json');
  if (!existsSync(inputs) || readFileSync(inputs, 'utf8') !== inputsJson()) changed.push(inputs);
  writeFileSync(inputs, inputsJson());
  for (const variant of VARIANTS) {
    const out = await exportVariant(gpu, variant);
    changed.push(...writeFolder(join(PEFT_LOAD_DIR, variant, 'adapter'), out.adapter));
    changed.push(...writeFolder(join(PEFT_LOAD_DIR, variant, 'merged'), out.merged));
    const bytes = [...out.adapter.values(), ...out.merged.values()].reduce((s, b) => s + b.length, 0);
    console.log(`${variant}: adapter ${[...out.adapter.keys()].join(', ')}; merged ${[...out.merged.keys()].join(', ')} (${bytes} bytes)`);
  }
  if (changed.length === 0) console.log('No file changed.');
  else {
    console.log(`Changed:\n  ${changed.join('\n  ')}`);
    console.log('The torch logits (torch-logits.safetensors, torch-check.json) no longer describe these files: run tools/reference/peft_load_check.py again.');
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then(
    () => process.exit(0),
    (e: unknown) => {
      console.error(e);
      process.exit(1);
    },
  );
}
