// The headless runner's command line (tools/tune): every training setting has a kebab-case flag that
// sets it, bad values fail with the flag's name and what it wants, a config file (the Train tab's
// saved form or a plain settings object) sits under the flags, the data and export flags, --help.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_TRAIN_SETTINGS, type TrainSettings } from '../src/engine/train/loop.ts';
import { allFlags, parseArgs } from '../tools/tune/args.ts';
import { UsageError, type ValueKind } from '../tools/tune/flag-values.ts';
import { helpText } from '../tools/tune/help.ts';
import { checkPush } from '../tools/tune/push.ts';
import { prepareOptions } from '../tools/tune/data-flags.ts';
import { TRAIN_FLAGS, TRAIN_KEYS, trainFlagName, trainSettingsFrom } from '../tools/tune/train-flags.ts';

const dir = mkdtempSync(join(tmpdir(), 'tune-args-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function writeJson(name: string, value: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, JSON.stringify(value));
  return path;
}

/** The UsageError message parseArgs throws for argv (fails the test when it does not throw one). */
function usageError(argv: string[]): string {
  try {
    parseArgs(argv);
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    return (e as Error).message;
  }
  throw new Error(`parseArgs(${argv.join(' ')}) did not throw`);
}

/** A valid value of each kind that differs from the recipe's default, as text and as parsed. */
function sample(kind: ValueKind, current: unknown): { text: string; value: unknown } {
  switch (kind.type) {
    case 'int': {
      const n = current === kind.min + 3 ? kind.min + 4 : kind.min + 3;
      return { text: String(n), value: n };
    }
    case 'number': {
      const lo = kind.min ?? kind.above ?? 0;
      const hi = kind.max ?? kind.below ?? lo + 1;
      const x = lo + (hi - lo) * 0.25;
      return { text: String(x), value: x };
    }
    case 'bool':
      return { text: current === false ? 'true' : 'false', value: current !== false ? false : true };
    case 'enum': {
      const v = kind.values.find((x) => x !== current)!;
      return { text: v, value: v };
    }
    case 'list':
      return { text: kind.values.slice(0, 2).join(','), value: kind.values.slice(0, 2) };
    case 'string':
      return { text: 'x', value: 'x' };
  }
}

describe('training flags', () => {
  it('every setting of the recipe has a kebab-case flag, and every flag sets its setting', () => {
    for (const key of Object.keys(DEFAULT_TRAIN_SETTINGS)) expect(TRAIN_KEYS, key).toContain(key);
    // The names people type (issue 6 item 8), derived from the keys.
    for (const [key, flag] of [
      ['maxSteps', '--max-steps'],
      ['loraR', '--lora-r'],
      ['learningRate', '--learning-rate'],
      ['checkpointEvery', '--checkpoint-every'],
      ['evalEvery', '--eval-every'],
      ['gradAccum', '--grad-accum'],
      ['earlyStoppingPatience', '--early-stopping-patience'],
    ] as const) {
      expect(trainFlagName(key)).toBe(flag);
    }
    const argv: string[] = [];
    const want: Record<string, unknown> = {};
    for (const key of TRAIN_KEYS) {
      const s = sample(TRAIN_FLAGS[key].kind, DEFAULT_TRAIN_SETTINGS[key]);
      argv.push(trainFlagName(key), s.text);
      want[key] = s.value;
    }
    // warmupSteps and warmupRatio together are refused when the settings are made, not when parsed.
    const args = parseArgs(argv);
    expect(args.train).toEqual(want);
    expect(Object.keys(args.train).sort()).toEqual([...TRAIN_KEYS].sort());
  });

  it('parses values as the settings want them', () => {
    const a = parseArgs(['--max-steps', '30', '--lora-r=8', '--learning-rate', '3e-4', '--targets', 'q_proj, v_proj', '--no-rslora', '--optimizer', 'adamw']);
    expect(a.train).toEqual({ maxSteps: 30, loraR: 8, learningRate: 3e-4, targets: ['q_proj', 'v_proj'], rslora: false, optimizer: 'adamw' });
    expect(parseArgs(['--rslora', 'false']).train.rslora).toBe(false);
    expect(parseArgs(['--rslora=off']).train.rslora).toBe(false);
    expect(parseArgs(['--rslora', '--max-steps', '2']).train).toEqual({ rslora: true, maxSteps: 2 });
  });

  it('a bad value names the flag, what it wants and what it got', () => {
    expect(usageError(['--lora-r', 'abc'])).toBe('--lora-r wants a whole number ≥ 1, got "abc".');
    expect(usageError(['--max-steps', '2.5'])).toBe('--max-steps wants a whole number ≥ 1, got "2.5".');
    expect(usageError(['--learning-rate', '0'])).toBe('--learning-rate wants a number > 0, got "0".');
    expect(usageError(['--learning-rate', '0x10'])).toMatch(/^--learning-rate wants a number > 0, got "0x10"/);
    expect(usageError(['--lora-dropout', '1'])).toBe('--lora-dropout wants a number ≥ 0 and < 1, got "1".');
    expect(usageError(['--optimizer', 'sgd'])).toBe('--optimizer wants one of adamw, adamw_8bit, got "sgd".');
    expect(usageError(['--schedule', 'cosine_with_restarts'])).toMatch(/^--schedule wants one of linear, cosine, constant/);
    expect(usageError(['--targets', 'q_proj,lm_head'])).toMatch(/^--targets wants a comma-separated list of q_proj, k_proj, .*got \["q_proj","lm_head"\]/);
    expect(usageError(['--targets', 'q_proj,q_proj'])).toMatch(/--targets lists a value twice/);
    expect(usageError(['--rslora=maybe'])).toBe('--rslora wants true or false, got "maybe".');
    expect(usageError(['--max-steps'])).toBe('--max-steps needs a value (a whole number ≥ 1).');
    expect(usageError(['--max-steps', '--lora-r', '4'])).toMatch(/^--max-steps needs a value/);
  });

  it('an unknown flag is refused, with the nearest one suggested', () => {
    expect(usageError(['--lora-rank', '8'])).toBe('Unknown flag --lora-rank. Did you mean --lora-r? (--help lists them.)');
    expect(usageError(['--learnig-rate', '1e-4'])).toMatch(/Did you mean --learning-rate\?/);
    expect(usageError(['--frobnicate'])).toBe('Unknown flag --frobnicate. (--help lists them.)');
    expect(usageError(['--no-max-steps'])).toMatch(/^Unknown flag --no-max-steps/);
    expect(usageError(['demo'])).toMatch(/^Unexpected "demo"/);
  });

  it('warmup is counted in steps or as a ratio: a ratio unsets the recipe steps, both at once are refused', () => {
    expect(trainSettingsFrom(DEFAULT_TRAIN_SETTINGS, parseArgs(['--warmup-ratio', '0.1']).train)).toMatchObject({ warmupRatio: 0.1, warmupSteps: undefined });
    expect(trainSettingsFrom(DEFAULT_TRAIN_SETTINGS, {}).warmupSteps).toBe(10);
    expect(() => trainSettingsFrom(DEFAULT_TRAIN_SETTINGS, parseArgs(['--warmup-ratio', '0.1', '--warmup-steps', '3']).train)).toThrow(/--warmup-steps and --warmup-ratio are both given/);
  });
});

describe('--config', () => {
  it("reads the Train tab's saved form, and flags win over it", () => {
    const path = writeJson('tab.json', { overrides: { loraR: 8, learningRate: 1e-3, batchSize: 2 }, length: 'maxSteps', warmup: 'steps' });
    const fromFile = parseArgs(['--config', path]);
    // length "maxSteps" without a number: the tab's 100.
    expect(fromFile.train).toEqual({ loraR: 8, learningRate: 1e-3, batchSize: 2, maxSteps: 100 });
    const overridden = parseArgs(['--config', path, '--lora-r', '4', '--max-steps', '7']);
    expect(overridden.train).toEqual({ loraR: 4, learningRate: 1e-3, batchSize: 2, maxSteps: 7 });
    // The flag may come before --config: flags still win.
    expect(parseArgs(['--lora-r', '4', '--config', path]).train.loraR).toBe(4);
  });

  it('reads the run length and the warmup kind as the tab does', () => {
    const epochs = writeJson('epochs.json', { overrides: { maxSteps: 40, epochs: 2 }, length: 'epochs' });
    expect(parseArgs(['--config', epochs]).train).toEqual({ epochs: 2 });
    const ratio = writeJson('ratio.json', { overrides: { warmupSteps: 5 }, length: 'epochs', warmup: 'ratio' });
    const r = parseArgs(['--config', ratio]).train;
    expect(r).toMatchObject({ warmupRatio: 0.03 });
    const settings: TrainSettings = trainSettingsFrom(DEFAULT_TRAIN_SETTINGS, r);
    expect(settings.warmupSteps).toBeUndefined();
    expect(settings.warmupRatio).toBe(0.03);
    // A --warmup-steps flag replaces the file's ratio rather than clashing with it.
    const steps = trainSettingsFrom(DEFAULT_TRAIN_SETTINGS, parseArgs(['--config', ratio, '--warmup-steps', '2']).train);
    expect(steps.warmupSteps).toBe(2);
    expect(steps.warmupRatio).toBeUndefined();
  });

  it('reads a plain settings object', () => {
    const path = writeJson('plain.json', { loraR: 32, targets: ['q_proj', 'v_proj'], optimizer: 'adamw', maxSteps: null });
    expect(parseArgs(['--config', path]).train).toEqual({ loraR: 32, targets: ['q_proj', 'v_proj'], optimizer: 'adamw' });
  });

  it('says which key of which file is wrong', () => {
    const unknown = writeJson('unknown.json', { loraRank: 8 });
    expect(usageError(['--config', unknown])).toMatch(new RegExp(`^${unknown}: "loraRank" is not a training setting`));
    const wrongType = writeJson('type.json', { overrides: { learningRate: '3e-4' } });
    expect(usageError(['--config', wrongType])).toBe(`${wrongType}: overrides: learningRate wants a number > 0, got "3e-4".`);
    const badLength = writeJson('length.json', { overrides: {}, length: 'steps' });
    expect(usageError(['--config', badLength])).toMatch(/length wants "epochs" or "maxSteps", got "steps"/);
    const notJson = join(dir, 'broken.json');
    writeFileSync(notJson, '{ "loraR": ');
    expect(usageError(['--config', notJson])).toMatch(new RegExp(`^--config ${notJson} is not JSON`));
    expect(usageError(['--config', join(dir, 'missing.json')])).toMatch(/cannot be read: ENOENT/);
  });
});

describe('data, run and export flags', () => {
  it('maps the Data tab options onto the preparation options', () => {
    const a = parseArgs(['--max-seq-length', '128', '--validation-percent', '10', '--data-seed', '7', '--no-packing', '--no-train-on-responses-only', '--template', 'llama3', '--overflow', 'drop']);
    expect(a.prepare).toEqual({ maxSeqLength: 128, validationFraction: 0.1, seed: 7, packing: false, trainOnResponsesOnly: false, template: 'llama3', overflow: 'drop' });
    expect(prepareOptions(a.prepare)).toMatchObject({ maxSeqLength: 128, validationFraction: 0.1, packing: false, template: 'llama3' });
    // The Data tab's defaults under what was not given.
    expect(prepareOptions({})).toMatchObject({ template: 'chatml', trainOnResponsesOnly: true, maxSeqLength: 2048, packing: true, validationFraction: 0, seed: 0 });
    expect(usageError(['--validation-percent', '60'])).toBe('--validation-percent wants a number ≥ 0 and ≤ 50, got "60".');
    expect(usageError(['--max-seq-length', '8'])).toBe('--max-seq-length wants a whole number from 16 to 131072, got "8".');
    // --seed is LoRA's; the data has its own.
    expect(parseArgs(['--seed', '3']).train.seed).toBe(3);
  });

  it('reads a custom template from a file, now', () => {
    const path = join(dir, 'template.jinja');
    writeFileSync(path, '{% for m in messages %}{{ m.content }}{% endfor %}');
    const a = parseArgs(['--template-file', path]);
    expect(prepareOptions(a.prepare)).toMatchObject({ template: 'custom', templateSource: '{% for m in messages %}{{ m.content }}{% endfor %}' });
    expect(usageError(['--template-file', join(dir, 'nope.jinja')])).toMatch(/^--template-file .*nope\.jinja cannot be read: ENOENT/);
    expect(() => prepareOptions(parseArgs(['--template', 'custom']).prepare)).toThrow('--template custom needs --template-file FILE');
  });

  it('parses the run flags and the export list', () => {
    const a = parseArgs(['--model', 'demo', '--data', 'x.jsonl', '--out', 'o', '--resume', '--rows', '100', '--export', 'adapter, merged,merged:f16,gguf:Q4_K_M,adapter:zip']);
    expect(a).toMatchObject({ model: 'demo', data: 'x.jsonl', out: 'o', resume: true, rows: 100 });
    expect(a.exports.map((e) => e.label)).toEqual(['adapter', 'merged:bf16', 'merged:f16', 'gguf:q4_k_m', 'adapter:zip']);
    expect(a.exports.map((e) => e.request)).toEqual([
      { kind: 'adapter', adapterLayout: 'folder' },
      { kind: 'merged', dtype: 'bfloat16' },
      { kind: 'merged', dtype: 'float16' },
      { kind: 'gguf', ggufType: 'q4_k_m' },
      { kind: 'adapter', adapterLayout: 'zip' },
    ]);
    // A bare "gguf" is the recommended q4_k_m: asking for it twice is a mistake worth saying.
    expect(usageError(['--export', 'gguf,gguf:q4_k_m'])).toBe('--export lists gguf:q4_k_m twice.');
    expect(usageError(['--export', 'gguf:q9'])).toMatch(/^--export: GGUF type "q9" is not offered; use one of f16, bf16, q8_0/);
    expect(usageError(['--export', 'onnx'])).toMatch(/^--export: "onnx" is not an export; use adapter, adapter:zip, merged/);
    expect(usageError(['--rows', '0'])).toBe('--rows wants a whole number ≥ 1, got "0".');
  });

  it('--export bundle is the run bundle (a zip, or bundle:folder), apart from the model exports', () => {
    expect(parseArgs(['--export', 'adapter,bundle'])).toMatchObject({ bundle: 'zip', exports: [{ label: 'adapter' }] });
    expect(parseArgs(['--export', 'bundle:folder'])).toMatchObject({ bundle: 'folder', exports: [] });
    expect(parseArgs(['--export', 'gguf']).bundle).toBeNull();
    expect(usageError(['--export', 'bundle:tar'])).toBe('--export: "bundle:tar" is not a run bundle; use bundle (a .zip) or bundle:folder.');
    expect(usageError(['--export', 'bundle,bundle:folder'])).toBe('--export lists the run bundle twice.');
  });

  it('--push-to-hub wants one model export and a token; --private goes with it', () => {
    const push = (argv: string[], token?: string): string | null => {
      try {
        checkPush(parseArgs(argv), token);
        return null;
      } catch (e) {
        expect(e).toBeInstanceOf(UsageError);
        return (e as Error).message;
      }
    };
    expect(parseArgs(['--push-to-hub', 'me/repo', '--private'])).toMatchObject({ pushToHub: 'me/repo', private: true });
    expect(push(['--export', 'adapter,bundle', '--push-to-hub', 'r'], 'hf_x')).toBeNull();
    expect(push(['--export', 'gguf:q8_0', '--push-to-hub', 'r'], 'hf_x')).toBeNull();
    expect(push(['--export', 'adapter,gguf', '--push-to-hub', 'r'], 'hf_x')).toMatch(/^--push-to-hub uploads one export .* adapter, gguf:q4_k_m are listed/);
    expect(push(['--export', 'bundle', '--push-to-hub', 'r'], 'hf_x')).toMatch(/none is listed/);
    expect(push(['--export', 'adapter:zip', '--push-to-hub', 'r'], 'hf_x')).toMatch(/use --export adapter\.$/);
    expect(push(['--export', 'adapter', '--push-to-hub', 'r'])).toMatch(/HF_TOKEN/);
    expect(push(['--export', 'adapter', '--private'], 'hf_x')).toMatch(/^--private is for the repo --push-to-hub creates/);
    expect(push(['--export', 'adapter'])).toBeNull();
  });

  it('--help has a line for every flag', () => {
    const lines = helpText().split('\n');
    for (const flag of allFlags()) expect(lines.filter((l) => l.trimStart().startsWith(`${flag} `) || l.trim() === flag), flag).toHaveLength(1);
    expect(parseArgs(['--help']).help).toBe(true);
    expect(parseArgs(['-h']).help).toBe(true);
  });
});
