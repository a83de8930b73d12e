// The run bundle's files (src/io/run-bundle*.ts): every file there, as a folder and as a zip; the
// studio's settings in train.py (read back by python3's own parser), tokenization.json, the data in
// the studio's order with its rows, the adapter, the accelerate configs, the README's commands;
// and the errors for a source that no longer gives the prepared rows.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { unzipSync } from 'fflate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parseModelConfig } from '../src/engine/arch.ts';
import { tokenizeExample } from '../src/data/tokenize.ts';
import type { LoadedTokenizer } from '../src/data/tokenizer-load.ts';
import { DEFAULT_TRAIN_SETTINGS, type TrainSettings } from '../src/engine/train/loop.ts';
import { fileBytes } from '../src/io/export-files.ts';
import { peftAdapterFiles } from '../src/io/peft.ts';
import { planRunBundle, RunBundleError, type RunBundleInput } from '../src/io/run-bundle.ts';
import { BundleDataError, bundleData, exampleLine, type BundleRecord, type RowBlock } from '../src/io/run-bundle-data.ts';
import { writeRunBundle } from '../src/io/run-bundle-node.ts';
import { AXOLOTL_KEY_NOTES } from '../src/io/run-bundle-readme.ts';
import { DEMO_DATA, DEMO_DIR, demoTokenizer, prepareBundleData, PREPARE, type PreparedBundleData } from '../tools/reference/run_bundle_check.ts';
import { randomAdapter } from './export-helpers.ts';

const HAS_PYTHON = spawnSync('python3', ['--version'], { stdio: 'ignore' }).status === 0;
const DEMO_HEAD = new TextEncoder().encode(`${readFileSync(DEMO_DATA, 'utf8').split('\n').slice(0, 80).join('\n')}\n`);
const arch = parseModelConfig(JSON.parse(readFileSync(join(DEMO_DIR, 'config.json'), 'utf8')));
const text = (b: Uint8Array): string => new TextDecoder().decode(b);
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** Settings unlike the defaults, so that nothing passes by coincidence. */
const SETTINGS: TrainSettings = {
  ...DEFAULT_TRAIN_SETTINGS,
  loraR: 8,
  loraAlpha: 32,
  rslora: false,
  targets: ['q_proj', 'v_proj'],
  loraDropout: 0.05,
  learningRate: 2e-4,
  schedule: 'cosine',
  warmupSteps: undefined,
  warmupRatio: 0.1,
  batchSize: 4,
  gradAccum: 3,
  epochs: 2,
  maxSteps: undefined,
  optimizer: 'adamw_8bit',
  min8bitSize: 1024,
  weightDecay: 0,
  maxGradNorm: 0.5,
  seed: 7,
  evalEvery: 5,
};

let tok: LoadedTokenizer;
let prepared: PreparedBundleData;
const dirs: string[] = [];
beforeAll(async () => {
  tok = await demoTokenizer();
  prepared = await prepareBundleData(tok, DEMO_HEAD, PREPARE, 12);
});
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function input(over: Partial<RunBundleInput> = {}): RunBundleInput {
  const adapter = randomAdapter(arch, 3, { r: SETTINGS.loraR, loraAlpha: SETTINGS.loraAlpha, targetModules: SETTINGS.targets, useRslora: false });
  return {
    modelId: 'webtune/demo-tiny-llama',
    modelType: 'llama',
    baseQuantization: 'nf4',
    settings: SETTINGS,
    prepare: prepared.manifest.options,
    template: prepared.template,
    tokenizer: { info: tok.info, padToken: '<|pad|>', files: tok.files },
    data: prepared.data,
    datasetName: 'Sort words (demo)',
    adapter: { files: peftAdapterFiles(arch, adapter), step: 5 },
    losses: [{ step: 1, loss: 6.25 }],
    now: new Date('2026-02-03T00:00:00Z'),
    ...over,
  };
}

async function folder(over: Partial<RunBundleInput> = {}): Promise<{ dir: string; files: Map<string, Uint8Array> }> {
  const plan = await planRunBundle(input(over), 'folder');
  const parent = mkdtempSync(join(tmpdir(), 'run-bundle-'));
  dirs.push(parent);
  const { path } = await writeRunBundle(plan, parent);
  const files = new Map<string, Uint8Array>();
  for (const f of plan.files) files.set(f.name, new Uint8Array(readFileSync(join(path, f.name))));
  return { dir: path, files };
}

describe('run bundle files', () => {
  it('holds the scripts, configs, data, tokenizer and adapter; the zip holds the same bytes', async () => {
    const { files } = await folder();
    expect([...files.keys()].sort()).toEqual(
      [
        'README.md',
        'accelerate_config_ddp.yaml',
        'accelerate_config_fsdp.yaml',
        'adapter/adapter_config.json',
        'adapter/adapter_model.safetensors',
        'axolotl.yaml',
        'chat_template.jinja',
        'data/rows.json',
        'data/train.jsonl',
        'data/validation.jsonl',
        'studio_data.py',
        'tokenization.json',
        'tokenizer/tokenizer.json',
        'tokenizer/tokenizer_config.json',
        'train.py',
      ].sort(),
    );
    const plan = await planRunBundle(input(), 'zip');
    expect(plan).toMatchObject({ layout: 'file', name: 'demo-tiny-llama-run-bundle.zip' });
    const zipped = unzipSync(await fileBytes(plan.files[0]));
    expect(Object.keys(zipped).sort()).toEqual([...files.keys()].sort());
    for (const [name, bytes] of files) expect(sha256(zipped[name]), name).toBe(sha256(bytes));
    expect(plan.totalBytes).toBeGreaterThanOrEqual((await fileBytes(plan.files[0])).length);
  });

  it.skipIf(!HAS_PYTHON)('train.py states each of the studio\'s settings (read by python3\'s parser)', async () => {
    const { dir } = await folder();
    const py = String.raw`
import ast, json, sys
tree = ast.parse(open(sys.argv[1]).read())
out = {}
for node in tree.body:
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) and node.targets[0].id.isupper():
        try:
            out[node.targets[0].id] = ast.literal_eval(node.value)
        except ValueError:
            pass
print(json.dumps(out))`;
    const got = JSON.parse(execFileSync('python3', ['-c', py, join(dir, 'train.py')], { encoding: 'utf8' }));
    expect(got).toMatchObject({
      MODEL: 'webtune/demo-tiny-llama',
      QUANTIZATION: 'nf4',
      DTYPE: 'bfloat16',
      LORA_R: 8,
      LORA_ALPHA: 32,
      USE_RSLORA: false,
      TARGET_MODULES: ['q_proj', 'v_proj'],
      LORA_DROPOUT: 0.05,
      LEARNING_RATE: 2e-4,
      LR_SCHEDULER: 'cosine',
      WARMUP_STEPS: null,
      WARMUP_RATIO: 0.1,
      BATCH_SIZE: 4,
      GRAD_ACCUM: 3,
      EPOCHS: 2,
      MAX_STEPS: null,
      OPTIMIZER: 'adamw_8bit',
      MIN_8BIT_SIZE: 1024,
      WEIGHT_DECAY: 0,
      MAX_GRAD_NORM: 0.5,
      MAX_SEQ_LENGTH: PREPARE.maxSeqLength,
      PACKING: true,
      TRAIN_ON_RESPONSES_ONLY: true,
      SEED: 7,
      EVAL_EVERY: 5,
      ADAPTER_STEP: 5,
    });
    const fixed = await folder({ settings: { ...SETTINGS, warmupSteps: 3, maxSteps: 40, schedule: 'constant' }, adapter: null, baseQuantization: 'none' });
    const again = JSON.parse(execFileSync('python3', ['-c', py, join(fixed.dir, 'train.py')], { encoding: 'utf8' }));
    expect(again).toMatchObject({ WARMUP_STEPS: 3, WARMUP_RATIO: null, MAX_STEPS: 40, LR_SCHEDULER: 'constant', ADAPTER_STEP: null, QUANTIZATION: 'none', DTYPE: 'float32' });
  });

  it('writes the tokenization facts, the template text and the data in training order with its rows', async () => {
    const { files } = await folder();
    const t = JSON.parse(text(files.get('tokenization.json')!));
    expect(t).toEqual({
      template_id: 'chatml',
      chat_template_file: 'chat_template.jinja',
      end_of_turn: '<|im_end|>',
      template_adds_bos: false,
      bos_token: '<|endoftext|>',
      eos_token: '<|im_end|>',
      bos_id: 508,
      eos_id: 510,
      pad_id: 511,
      adds_bos_on_encode: true,
      append_eos_to_text: true,
      train_on_responses_only: true,
      max_seq_length: PREPARE.maxSeqLength,
      overflow: 'truncate',
      packing: true,
      eos_rename: null,
    });
    expect(text(files.get('chat_template.jinja')!)).toBe(prepared.template.source);
    const lines = text(files.get('data/train.jsonl')!).trimEnd().split('\n');
    expect(lines).toEqual(prepared.data.train.lines);
    const rows = JSON.parse(text(files.get('data/rows.json')!));
    expect(rows.train.file_sha256).toBe(sha256(files.get('data/train.jsonl')!));
    expect(rows.train.docs_per_row.reduce((a: number, b: number) => a + b, 0)).toBe(lines.length);
    expect(rows.train.rows).toBe(prepared.data.train.rows);
    expect(rows.train.first_rows).toHaveLength(12);
    expect(rows.validation.records).toBe(text(files.get('data/validation.jsonl')!).trimEnd().split('\n').length);
    // Every record kept by the preparation is in one split or the other, once.
    expect(lines.length + rows.validation.records).toBe(prepared.manifest.stats.examples);
    expect(new TextDecoder().decode(files.get('tokenizer/tokenizer.json')!)).toBe(JSON.stringify(tok.files.tokenizerJson, null, 2));
  });

  it('puts the adapter under adapter/ byte for byte', async () => {
    const adapter = randomAdapter(arch, 9, { r: SETTINGS.loraR, loraAlpha: SETTINGS.loraAlpha, targetModules: SETTINGS.targets });
    const peft = peftAdapterFiles(arch, adapter);
    const { files } = await folder({ adapter: { files: peft, step: 5 } });
    for (const f of peft) expect(sha256(files.get(`adapter/${f.name}`)!)).toBe(sha256(await fileBytes(f)));
  });

  it('writes accelerate configs for DDP and for FSDP over the model\'s decoder layers', async () => {
    const { files } = await folder();
    const ddp = parse(text(files.get('accelerate_config_ddp.yaml')!));
    expect(ddp).toMatchObject({ distributed_type: 'MULTI_GPU', mixed_precision: 'no', num_machines: 1, main_training_function: 'main' });
    const fsdp = parse(text(files.get('accelerate_config_fsdp.yaml')!));
    expect(fsdp).toMatchObject({
      distributed_type: 'FSDP',
      mixed_precision: 'bf16',
      fsdp_config: { fsdp_auto_wrap_policy: 'TRANSFORMER_BASED_WRAP', fsdp_transformer_layer_cls_to_wrap: 'LlamaDecoderLayer', fsdp_use_orig_params: true, fsdp_sharding_strategy: 'FULL_SHARD' },
    });
  });

  it('tells the exact commands, the settings and the Axolotl keys in its README', async () => {
    const { files } = await folder();
    const readme = text(files.get('README.md')!);
    for (const command of [
      'accelerate launch --config_file accelerate_config_ddp.yaml --num_processes 2 train.py\n',
      'accelerate launch --num_processes 1 train.py\n',
      'accelerate launch --config_file accelerate_config_ddp.yaml --num_processes 2 train.py --model /path/to/model\n',
      'accelerate launch --config_file accelerate_config_ddp.yaml --num_processes 2 train.py --resume-adapter\n',
      'accelerate launch --config_file accelerate_config_fsdp.yaml --num_processes 8 train.py --dtype bfloat16\n',
      'accelerate launch --config_file accelerate_config_ddp.yaml --num_processes 2 train.py --max-steps 3\n',
      'axolotl train axolotl.yaml\n',
    ]) {
      expect(readme).toContain(command);
    }
    expect(readme).toContain('after 5 of ');
    expect(readme).toContain('| LoRA alpha | 32 | `LORA_ALPHA` | `lora_alpha` |');
    for (const [keys] of AXOLOTL_KEY_NOTES) for (const k of keys) expect(readme).toContain(`\`${k}\``);
    // Without an adapter there is nothing to resume.
    expect(text((await folder({ adapter: null })).files.get('README.md')!)).not.toContain('--resume-adapter\n');
  });
});

describe('run bundle errors', () => {
  /** The prepared rows again, for a second pass over them. */
  async function* rows(split: 'train' | 'validation'): AsyncGenerator<RowBlock> {
    const m = prepared.manifest;
    for (let i = 0; i < m.shards.length; i++) yield await prepared.store.readShard(m.fingerprint, i, split);
  }
  async function* records(skip: number): AsyncGenerator<BundleRecord> {
    const all = [...prepared.data.train.lines, ...(prepared.data.validation?.lines ?? [])];
    for (const [i, line] of all.entries()) {
      if (i === skip) continue;
      const example = JSON.parse(line);
      const ids = tokenizeExample(example, { tokenizer: tok.tokenizer, info: tok.info, template: prepared.template }, {
        maxSeqLength: PREPARE.maxSeqLength,
        trainOnResponsesOnly: true,
        overflow: 'truncate',
      });
      if (ids.ok) yield { example, inputIds: ids.value.example.input_ids };
    }
  }

  it('finds every document from the records in any order, and says so when the source lost one', async () => {
    const again = await bundleData({ records: records(-1), train: rows('train'), validation: rows('validation') });
    expect(again.train.lines).toEqual(prepared.data.train.lines);
    expect(again.train.rowsSha256).toBe(prepared.data.train.rowsSha256);
    await expect(bundleData({ records: records(4), train: rows('train') })).rejects.toThrow(BundleDataError);
    await expect(bundleData({ records: records(4), train: rows('train') })).rejects.toThrow(/changed since the dataset was prepared: prepare it again/);
  });

  it('refuses rows of another length than the prepared one, and settings without targets', async () => {
    await expect(planRunBundle(input({ prepare: { ...prepared.manifest.options, maxSeqLength: 64 } }))).rejects.toThrow(RunBundleError);
    await expect(planRunBundle(input({ settings: { ...SETTINGS, targets: [] } }))).rejects.toThrow('no target modules');
  });

  it('writes plain-text records as {"text"} lines', () => {
    expect(exampleLine({ text: 'a "b"\n' })).toBe('{"text":"a \\"b\\"\\n"}');
  });
});
