// Shared by the model-load tests: fixture repos written to temp folders (a bnb-4bit checkpoint,
// an unsupported architecture) and the check that a loaded model equals its checkpoint.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { LoadedModel } from '../src/engine/loader.ts';
import { readNf4 } from '../src/engine/nf4.ts';
import { readTensor } from '../src/engine/tensor.ts';
import { f32Bits } from '../src/io/dtype.ts';
import { NF4_CODE, quantizeNf4, roundToDtype, type Nf4SourceDtype, type Nf4Weight } from '../src/io/nf4.ts';
import {
  bytesSource,
  openSafetensors,
  writeSafetensorsToBytes,
  type Dtype,
  type SafetensorsFile,
  type TensorToWrite,
} from '../src/io/safetensors.ts';
import { f32ToBytesLE } from '../src/io/dtype.ts';
import { FIXTURES_DIR } from '../tools/mock-hub/server.ts';

export const TINY_DIR = join(FIXTURES_DIR, 'models/webtune/tiny-random-llama');
export const GATED_DIR = join(FIXTURES_DIR, 'models/webtune/tiny-gated-llama');
export const DEMO_DIR = 'public/demo/model';

const NF4_DTYPE: Partial<Record<Dtype, Nf4SourceDtype>> = { BF16: 'bfloat16', F16: 'float16', F32: 'float32' };

/** Every safetensors file of a folder (its shards), opened from disk. */
export async function openCheckpoint(dir: string, files: string[]): Promise<Map<string, SafetensorsFile>> {
  const out = new Map<string, SafetensorsFile>();
  for (const f of files) {
    const st = await openSafetensors(bytesSource(new Uint8Array(readFileSync(join(dir, f))), f));
    for (const t of st.tensors) out.set(t.name, st);
  }
  return out;
}

const bits = (a: Float32Array): number[] => Array.from(a, f32Bits);

/** Asserts that two NF4 weights hold the same bytes, absmax bits and nested state. */
export function expectSameNf4(got: Nf4Weight, want: Nf4Weight, name: string): void {
  expect(got.shape, name).toEqual(want.shape);
  expect(got.dtype, name).toBe(want.dtype);
  expect(Buffer.from(got.packed).equals(Buffer.from(want.packed)), `${name}: packed bytes`).toBe(true);
  expect(bits(got.absmax), `${name}: absmax`).toEqual(bits(want.absmax));
  expect(!!got.nested, `${name}: nested`).toBe(!!want.nested);
  if (got.nested && want.nested) {
    expect(Array.from(got.nested.qabsmax), `${name}: qabsmax`).toEqual(Array.from(want.nested.qabsmax));
    expect(bits(got.nested.absmax), `${name}: nested absmax`).toEqual(bits(want.nested.absmax));
    expect(f32Bits(got.nested.offset), `${name}: nested offset`).toBe(f32Bits(want.nested.offset));
  }
}

/**
 * Every linear of `model` equals quantizeNf4 (the CPU reference) of the checkpoint's values, and
 * every other tensor equals the checkpoint's values (rounded to f16 where stored in f16).
 */
export async function expectMatchesCheckpoint(
  device: GPUDevice,
  model: LoadedModel,
  checkpoint: Map<string, SafetensorsFile>,
  doubleQuant = true,
): Promise<void> {
  expect(model.nf4.size).toBe(model.arch.layers * model.arch.linears.length);
  for (const [name, w] of model.nf4) {
    const st = checkpoint.get(name)!;
    const info = st.get(name);
    const want = quantizeNf4(await st.readF32(name), { shape: [...info.shape], dtype: NF4_DTYPE[info.dtype], doubleQuant });
    expectSameNf4(await readNf4(device, w), want, name);
  }
  for (const [name, t] of model.dense) {
    const values = await checkpoint.get(name)!.readF32(name);
    const want = t.dtype === 'f16' ? roundToDtype(values, 'float16') : values;
    expect(bits(await readTensor(device, t)), name).toEqual(bits(want));
  }
}

/** The tiny Llama's weights rewritten as bitsandbytes saves a 4-bit model (double quant). */
export async function writeBnbRepo(dir: string): Promise<Map<string, Nf4Weight>> {
  mkdirSync(dir, { recursive: true });
  const config = JSON.parse(readFileSync(join(TINY_DIR, 'config.json'), 'utf8'));
  config.quantization_config = {
    quant_method: 'bitsandbytes',
    load_in_4bit: true,
    bnb_4bit_quant_type: 'nf4',
    bnb_4bit_use_double_quant: true,
    bnb_4bit_compute_dtype: 'bfloat16',
    llm_int8_skip_modules: null,
  };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2));
  const st = await openSafetensors(bytesSource(new Uint8Array(readFileSync(join(TINY_DIR, 'model.safetensors')))));
  const tensors: TensorToWrite[] = [];
  const quantized = new Map<string, Nf4Weight>();
  const f32 = (name: string, v: Float32Array): TensorToWrite => ({ name, dtype: 'F32', shape: [v.length], data: f32ToBytesLE(v).slice() });
  for (const t of st.tensors) {
    if (!/_proj\.weight$/.test(t.name)) {
      tensors.push({ name: t.name, dtype: t.dtype, shape: t.shape, data: (await st.read(t.name)).slice() });
      continue;
    }
    const w = quantizeNf4(await st.readF32(t.name), { shape: [...t.shape], dtype: 'bfloat16', doubleQuant: true });
    quantized.set(t.name, w);
    const p = t.name;
    tensors.push({ name: p, dtype: 'U8', shape: [w.packed.length, 1], data: w.packed });
    tensors.push({ name: `${p}.absmax`, dtype: 'U8', shape: [w.nested!.qabsmax.length], data: w.nested!.qabsmax });
    tensors.push(f32(`${p}.quant_map`, NF4_CODE));
    tensors.push(f32(`${p}.nested_absmax`, w.nested!.absmax));
    tensors.push(f32(`${p}.nested_quant_map`, w.nested!.code));
    const state = new TextEncoder().encode(
      JSON.stringify({
        quant_type: 'nf4',
        blocksize: w.blocksize,
        dtype: 'bfloat16',
        shape: w.shape,
        nested_blocksize: w.nested!.blocksize,
        nested_dtype: 'float32',
        nested_offset: w.nested!.offset,
      }),
    );
    tensors.push({ name: `${p}.quant_state.bitsandbytes__nf4`, dtype: 'U8', shape: [state.length], data: state });
  }
  writeFileSync(join(dir, 'model.safetensors'), await writeSafetensorsToBytes(tensors));
  return quantized;
}

/** A repo with a config.json of an architecture the engine does not support, and weights. */
export function writeUnsupportedRepo(dir: string): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), readFileSync('tests/fixtures/configs/google--gemma-2-2b.json'));
  writeFileSync(join(dir, 'model.safetensors'), readFileSync(join(TINY_DIR, 'model.safetensors')));
}

/** Requests the mock Hub saw for a file's bytes (resolve or storage host), not metadata. */
export function byteRequests(requests: { url: string; range?: string }[], file: string): { url: string; range?: string }[] {
  return requests.filter((r) => r.url.includes(`/resolve/`) ? r.url.endsWith(`/${file}`) : r.url.startsWith('/cdn-lfs/') && r.url.includes(`filename=${encodeURIComponent(file)}`));
}
