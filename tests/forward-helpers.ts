// Shared by the forward and generation tests: the parity fixtures of tools/reference/
// make_llama_fixtures.py read from disk, and a model folder served to loadModel from disk.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseModelConfig, type ModelArch } from '../src/engine/arch.ts';
import type { Gpu } from '../src/engine/gpu.ts';
import type { Kernels } from '../src/engine/kernels.ts';
import { loadModel, type LoadDeps, type LoadedModel, type ModelSourceSpec } from '../src/engine/loader.ts';
import { MemoryCacheStore, ModelCache } from '../src/io/cache.ts';
import { readPeftAdapter, type LoraAdapter } from '../src/io/peft.ts';
import { bytesSource, openSafetensors, type SafetensorsFile } from '../src/io/safetensors.ts';

export const PARITY_DIR = 'tests/fixtures/parity';
export const VARIANTS = ['llama', 'llama3-tied', 'qwen2', 'qwen3', 'mistral'] as const;
export type Variant = (typeof VARIANTS)[number];

export interface ParityFixture {
  variant: Variant;
  dir: string;
  arch: ModelArch;
  weights: SafetensorsFile;
  adapter: LoraAdapter;
  batch: number;
  seqLen: number;
  inputIds: Int32Array;
  positionIds: Int32Array;
  segmentIds: Int32Array;
  lossMask: Int32Array;
  logitsBase: Float32Array;
  logitsLora: Float32Array;
  /** transformers' mean CE with the adapter (expected.json `loss`). */
  loss: number;
}

const open = async (path: string): Promise<SafetensorsFile> => openSafetensors(bytesSource(new Uint8Array(readFileSync(path)), path));

async function int32(st: SafetensorsFile, name: string): Promise<Int32Array> {
  const info = st.get(name);
  if (info.dtype !== 'I32') throw new Error(`${name} is ${info.dtype}`);
  const bytes = await st.read(name);
  return new Int32Array(bytes.slice().buffer);
}

export async function readParityFixture(variant: Variant): Promise<ParityFixture> {
  const dir = join(PARITY_DIR, variant);
  const arch = parseModelConfig(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')));
  const weights = await open(join(dir, 'model.safetensors'));
  const expected = await open(join(dir, 'expected.safetensors'));
  const { adapter } = await readPeftAdapter(
    {
      config: readFileSync(join(dir, 'adapter/adapter_config.json'), 'utf8'),
      weights: new Uint8Array(readFileSync(join(dir, 'adapter/adapter_model.safetensors'))),
    },
    arch,
  );
  const [batch, seqLen] = expected.get('input_ids').shape;
  return {
    variant,
    dir,
    arch,
    weights,
    adapter,
    batch,
    seqLen,
    inputIds: await int32(expected, 'input_ids'),
    positionIds: await int32(expected, 'position_ids'),
    segmentIds: await int32(expected, 'segment_ids'),
    lossMask: await int32(expected, 'loss_mask'),
    logitsBase: await expected.readF32('logits_base'),
    logitsLora: await expected.readF32('logits_lora'),
    loss: JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')).loss,
  };
}

/** max |got - want| / max |want|: the error relative to the largest logit. */
export function relToMax(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let err = 0;
  let top = 0;
  for (let i = 0; i < want.length; i++) {
    err = Math.max(err, Math.abs(got[i] - want[i]));
    top = Math.max(top, Math.abs(want[i]));
  }
  return err / top;
}

/** The top-level files of a model folder served to loadModel as a 'demo' source (no Hub). */
export function folderSource(dir: string, id: string): { source: ModelSourceSpec; fetch: (url: string) => Promise<Response> } {
  const baseUrl = `http://local.test/${id}/`;
  const files = readdirSync(dir)
    .filter((f) => statSync(join(dir, f)).isFile())
    .map((path) => ({ path, size: statSync(join(dir, path)).size }));
  const fetch = async (url: string): Promise<Response> => {
    if (!url.startsWith(baseUrl)) return new Response('not found', { status: 404 });
    return new Response(new Uint8Array(readFileSync(join(dir, url.slice(baseUrl.length)))));
  };
  return { source: { kind: 'demo', id, name: id, baseUrl, files }, fetch };
}

export function loadDeps(gpu: Gpu, kernels: Kernels, fetch: (url: string) => Promise<Response>): LoadDeps {
  return { gpu, kernels, cache: new ModelCache(new MemoryCacheStore()), fetch };
}

/** Parity fixture `variant` and its model loaded as the studio loads it (through loadModel from its
 * folder: NF4 linears, here with f32 embeddings). */
export async function loadParityModel(gpu: Gpu, kernels: Kernels, variant: Variant): Promise<{ f: ParityFixture; loaded: LoadedModel }> {
  const f = await readParityFixture(variant);
  const { source, fetch } = folderSource(f.dir, `parity/${variant}`);
  const loaded = await loadModel(loadDeps(gpu, kernels, fetch), source, { embeddingDtype: 'f32' });
  return { f, loaded };
}
