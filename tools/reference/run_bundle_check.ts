// The run bundle of a short demo run, made here with the studio's own code: the demo dataset
// prepared as the Data tab prepares it, the demo model trained a few steps on the GPU Dawn finds
// (f32, dense base weights: train.py then needs no bitsandbytes), the adapter of step
// ADAPTER_STEP exported, and the bundle written with studio.json (the studio's losses).
// run_bundle_check.sh runs that bundle with accelerate on two GPUs and records its losses;
// tests/run-bundle-gpu.test.ts compares the two. The engine's WGSL comes in through Vite, so this
// runs under vitest: writing the fixture is
//
//   RUN_BUNDLE_FIXTURE=write npx vitest run --project unit tests/run-bundle-gpu.test.ts

import '../../tests/setup/node-globals.ts'; // Float16Array before webgpu-utils loads
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseModelConfig } from '../../src/engine/arch.ts';
import { openFileSource } from '../../src/data/file-source.ts';
import { MemoryKv } from '../../src/data/kv.ts';
import { prepareDataset } from '../../src/data/prepare.ts';
import type { PrepareOptions } from '../../src/data/prepare-options.ts';
import { PreparedStore, type PreparedManifest } from '../../src/data/store.ts';
import { resolveTemplate, type EffectiveTemplate } from '../../src/data/templates.ts';
import { tokenizerFromFiles, type LoadedTokenizer } from '../../src/data/tokenizer-load.ts';
import { adapterFromLora } from '../../src/engine/export-source.ts';
import type { Gpu } from '../../src/engine/gpu.ts';
import { Kernels } from '../../src/engine/kernels.ts';
import { destroyLora } from '../../src/engine/lora-weights.ts';
import { destroyModelWeights, modelFromReader } from '../../src/engine/model.ts';
import { DEFAULT_TRAIN_SETTINGS, runTraining, type StepMetrics, type TrainSettings } from '../../src/engine/train/loop.ts';
import { shardRowSource } from '../../src/engine/train/shard-source.ts';
import { peftAdapterFiles, type LoraAdapter } from '../../src/io/peft.ts';
import { bundleData, tokenizedRecords, type BundleData, type RowBlock } from '../../src/io/run-bundle-data.ts';
import { planRunBundle } from '../../src/io/run-bundle.ts';
import { writeRunBundle } from '../../src/io/run-bundle-node.ts';
import { bytesSource, openSafetensors } from '../../src/io/safetensors.ts';

export const DEMO_DIR = 'public/demo/model';
export const DEMO_DATA = 'public/demo/data/sort-words.jsonl';
export const DEMO_ID = 'webtune/demo-tiny-llama';
/** The bundle's folder name under OUT (planRunBundle names it after the model). */
export const BUNDLE_NAME = 'demo-tiny-llama-run-bundle';
/** The adapter in the bundle stands after this many steps; the studio's run goes on to TOTAL_STEPS. */
export const ADAPTER_STEP = 3;
export const TOTAL_STEPS = 6;

export const PREPARE: PrepareOptions = {
  template: 'chatml',
  trainOnResponsesOnly: true,
  maxSeqLength: 128,
  overflow: 'truncate',
  packing: true,
  validationFraction: 0.1,
  seed: 0,
};

export const SETTINGS: TrainSettings = {
  ...DEFAULT_TRAIN_SETTINGS,
  loraR: 8,
  loraAlpha: 16,
  rslora: true,
  learningRate: 1e-2,
  schedule: 'linear',
  warmupSteps: 1,
  batchSize: 2,
  gradAccum: 2,
  maxSteps: TOTAL_STEPS,
  optimizer: 'adamw',
  weightDecay: 0.01,
  maxGradNorm: 1,
  seed: 0,
  checkpointEvery: 0,
  evalEvery: 0,
};

/** What the studio did, as studio.json records it. */
export interface StudioRecord {
  model: string;
  prepare: PrepareOptions;
  settings: TrainSettings;
  adapterStep: number;
  /** Loss of each step of the studio's run (1-based steps). */
  losses: { step: number; loss: number }[];
  /** SHA-256 of every bundle file, by path: what the GPU run ran. */
  files: Record<string, string>;
}

const json = (path: string): Record<string, unknown> => JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;

export function demoTokenizer(): Promise<LoadedTokenizer> {
  return tokenizerFromFiles(DEMO_ID, { tokenizerJson: json(join(DEMO_DIR, 'tokenizer.json')), tokenizerConfig: json(join(DEMO_DIR, 'tokenizer_config.json')) });
}

async function* blocks(store: PreparedStore, m: PreparedManifest, split: 'train' | 'validation'): AsyncGenerator<RowBlock> {
  for (let i = 0; i < m.shards.length; i++) yield await store.readShard(m.fingerprint, i, split);
}

/** SHA-256 of every file under `dir`, by relative path ('/'-separated). */
export function fileHashes(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out[relative(dir, p).split('\\').join('/')] = createHash('sha256').update(readFileSync(p)).digest('hex');
    }
  };
  walk(dir);
  return out;
}

/** Trains the demo model with SETTINGS on the prepared rows; stops after `stopAfter` steps. */
async function train(kernels: Kernels, manifest: PreparedManifest, store: PreparedStore, stopAfter: number): Promise<{ losses: StepMetrics[]; adapter: LoraAdapter }> {
  const arch = parseModelConfig(json(join(DEMO_DIR, 'config.json')));
  const weights = await openSafetensors(bytesSource(new Uint8Array(readFileSync(join(DEMO_DIR, 'model.safetensors'))), 'model.safetensors'));
  const model = await modelFromReader(kernels, arch, weights, { dtype: 'f32' });
  const losses: StepMetrics[] = [];
  try {
    const data = await shardRowSource(store, manifest.fingerprint, 'train');
    const r = await runTraining(kernels, model, data, SETTINGS, (m) => losses.push(m), { stopAfter });
    try {
      return { losses, adapter: await adapterFromLora(kernels.device, arch, r.lora, { id: DEMO_ID }) };
    } finally {
      destroyLora(r.lora);
    }
  } finally {
    destroyModelWeights(model);
  }
}

export interface PreparedBundleData {
  manifest: PreparedManifest;
  store: PreparedStore;
  template: EffectiveTemplate;
  data: BundleData;
}

/** A JSONL prepared as the Data tab prepares it, and its rows' records for a bundle. */
export async function prepareBundleData(tokenizer: LoadedTokenizer, jsonl: Uint8Array, prepare: PrepareOptions = PREPARE, firstRows = 4): Promise<PreparedBundleData> {
  const store = new PreparedStore(new MemoryKv());
  const file = () => new File([new Uint8Array(jsonl)], 'data.jsonl', { lastModified: 1_700_000_000_000 });
  const manifest = await prepareDataset(await openFileSource(file()), prepare, { store, tokenizer });
  const template = resolveTemplate(prepare.template, tokenizer.info, { source: prepare.templateSource });
  const data = await bundleData({
    records: tokenizedRecords(await openFileSource(file()), manifest.format, { tokenizer: tokenizer.tokenizer, info: tokenizer.info, template }, {
      maxSeqLength: prepare.maxSeqLength,
      trainOnResponsesOnly: prepare.trainOnResponsesOnly,
      overflow: prepare.overflow,
    }),
    train: blocks(store, manifest, 'train'),
    validation: blocks(store, manifest, 'validation'),
    firstRows,
  });
  return { manifest, store, template, data };
}

/** Makes OUT/BUNDLE_NAME and OUT/studio.json with training on `gpu`; returns the record. */
export async function makeDemoRunBundle(out: string, gpu: Gpu): Promise<StudioRecord> {
  const tokenizer = await demoTokenizer();
  const { manifest, store, template, data } = await prepareBundleData(tokenizer, readFileSync(DEMO_DATA), PREPARE, SETTINGS.batchSize * SETTINGS.gradAccum);
  const kernels = new Kernels(gpu);
  // Two runs of the same steps: the adapter of step ADAPTER_STEP, and the losses after it.
  const first = await train(kernels, manifest, store, ADAPTER_STEP);
  const whole = await train(kernels, manifest, store, TOTAL_STEPS);
  const again = whole.losses.slice(0, ADAPTER_STEP).map((m) => m.loss);
  if (again.some((l, i) => l !== first.losses[i].loss)) {
    throw new Error(`The two runs differ in their first ${ADAPTER_STEP} losses (${first.losses.map((m) => m.loss)} vs ${again}): training is not deterministic here.`);
  }
  const losses = whole.losses.map((m) => ({ step: m.step, loss: m.loss }));
  const arch = parseModelConfig(json(join(DEMO_DIR, 'config.json')));
  const plan = await planRunBundle(
    {
      modelId: DEMO_ID,
      modelType: 'llama',
      baseQuantization: 'none',
      dtype: 'float32',
      settings: SETTINGS,
      prepare: manifest.options,
      template,
      tokenizer: { info: tokenizer.info, padToken: '<|pad|>', files: { tokenizerJson: readFileSync(join(DEMO_DIR, 'tokenizer.json')), tokenizerConfig: readFileSync(join(DEMO_DIR, 'tokenizer_config.json')) } },
      data,
      datasetName: 'Sort words (demo)',
      adapter: { files: peftAdapterFiles(arch, first.adapter), step: ADAPTER_STEP },
      losses,
      now: new Date('2026-01-01T00:00:00Z'),
    },
    'folder',
  );
  mkdirSync(out, { recursive: true });
  rmSync(join(out, plan.name), { recursive: true, force: true });
  const written = await writeRunBundle(plan, out);
  const record: StudioRecord = { model: DEMO_ID, prepare: PREPARE, settings: SETTINGS, adapterStep: ADAPTER_STEP, losses, files: fileHashes(written.path) };
  writeFileSync(join(out, 'studio.json'), `${JSON.stringify(record, null, 2)}\n`);
  return record;
}
