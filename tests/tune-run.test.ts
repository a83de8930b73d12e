// The headless runner end to end, as a child process (`npm run tune`, built by tools/tune/run.mjs)
// on this machine's Dawn: the demo model trains 3 steps on the demo data (short rows, batch 1) and
// exports a PEFT folder and a Q8_0 GGUF, which re-read; `--resume --max-steps 5` continues at step
// 4 from the checkpoint, the prepared dataset found in the cache; `--adapter DIR` exports the saved
// adapter without training, to the same bytes (with --quantizer gpu); bad input ends with one line
// and exit code 2.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { unzipSync } from 'fflate';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseModelConfig } from '../src/engine/arch.ts';
import type { StepMetrics } from '../src/engine/train/loop.ts';
import { openGguf } from '../src/io/gguf-read.ts';
import { ggmlTypeName } from '../src/io/quants/ggml-types.ts';
import { readPeftAdapter } from '../src/io/peft.ts';
import { startMockHub } from '../tools/mock-hub/server.ts';

const root = mkdtempSync(join(tmpdir(), 'tune-run-'));
const out = join(root, 'out');
const cache = join(root, 'cache');
afterAll(() => rmSync(root, { recursive: true, force: true }));

const DEMO = 'public/demo/model';
const arch = parseModelConfig(JSON.parse(readFileSync(join(DEMO, 'config.json'), 'utf8')));
// Short rows and one row a step keep a step to well under a second here (the first one compiles the shaders).
const SMALL = ['--max-seq-length', '128', '--batch-size', '1', '--grad-accum', '1', '--learning-rate', '3e-3', '--warmup-steps', '1'];

interface Lines {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Every stdout line, parsed (the test fails on a line that is not JSON). */
  json: Record<string, unknown>[];
  seconds: number;
}

/** `npm run --silent tune -- ARGS`; the build is skipped after the first call (the bundle is the same). */
function tune(args: string[], build: boolean, env: Record<string, string> = {}): Promise<Lines> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn('npm', ['run', '--silent', 'tune', '--', ...args], {
      env: { ...process.env, ...(build ? {} : { TUNE_SKIP_BUILD: '1' }), XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? tmpdir(), ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => {
      const json = stdout
        .split('\n')
        .filter((l) => l.length > 0)
        .map((l) => {
          try {
            return JSON.parse(l) as Record<string, unknown>;
          } catch {
            throw new Error(`stdout line is not JSON: ${l}\nstderr: ${stderr}`);
          }
        });
      resolve({ code, stdout, stderr, json, seconds: (performance.now() - t0) / 1000 });
    });
  });
}

const ofType = (r: Lines, type: string) => r.json.filter((l) => l.type === type);
const steps = (r: Lines) => ofType(r, 'step') as unknown as (StepMetrics & { type: 'step' })[];
const summaryOf = (r: Lines) => {
  const s = ofType(r, 'summary');
  expect(s, r.stderr).toHaveLength(1);
  expect(r.json.at(-1), 'the summary is the last line').toBe(s[0]);
  return s[0] as Record<string, any>;
};

async function readAdapter(dir: string) {
  return readPeftAdapter({ config: readFileSync(join(dir, 'adapter_config.json'), 'utf8'), weights: new Uint8Array(readFileSync(join(dir, 'adapter_model.safetensors'))) }, arch);
}

let first: Lines;
let adapterDir: string;
let ggufPath: string;

describe('npm run tune', () => {
  it('trains the demo model 3 steps, a JSON line per step, then exports a PEFT folder and a Q8_0 GGUF', async () => {
    first = await tune(['--model', 'demo', '--data', 'demo', '--max-steps', '3', '--out', out, '--cache-dir', cache, ...SMALL, '--export', 'adapter,gguf:q8_0'], true);
    expect(first.code, first.stderr).toBe(0);
    const s = steps(first);
    expect(s.map((m) => m.step)).toEqual([1, 2, 3]);
    for (const m of s) {
      expect(m.totalSteps).toBe(3);
      expect(Number.isFinite(m.loss) && m.loss > 0, `loss of step ${m.step}: ${m.loss}`).toBe(true);
      expect(Number.isFinite(m.gradNorm)).toBe(true);
      expect(m.skipped).toBe(false);
      expect(m.trainedTokens).toBeGreaterThan(0);
    }
    // Progress of each stage, before the steps (load, prepare) and after them (export).
    const stages = ofType(first, 'progress').map((p) => p.stage);
    expect(new Set(stages)).toEqual(new Set(['prepare', 'load', 'export']));
    expect(first.json.findLastIndex((l) => l.stage === 'load')).toBeLessThan(first.json.findIndex((l) => l.type === 'step'));

    const sum = summaryOf(first);
    expect(sum).toMatchObject({ stopped: 'done', steps: 3, stepsThisRun: 3, resumedFromStep: null, skipped: 0, model: 'webtune/demo-tiny-llama', checkpoint: { step: 3 } });
    expect(sum.losses).toEqual({ first: s[0].loss, last: s[2].loss });
    expect(sum.dataset).toMatchObject({ cached: false, seqLength: 128 });
    expect(sum.dataset.trainRows).toBeGreaterThan(3);
    expect(sum.tokensPerSecond).toBeGreaterThan(0);
    expect(sum.peakGpuMemoryBytes).toBeGreaterThan(0);

    // Every file the summary names is on disk with the size it says.
    const files = sum.files as { path: string; bytes: number }[];
    for (const f of files) expect(statSync(f.path).size, f.path).toBe(f.bytes);
    const names = files.map((f) => f.path.slice(out.length + 1)).sort();
    expect(names).toEqual(
      ['demo-tiny-llama-Q8_0/Modelfile', 'demo-tiny-llama-Q8_0/demo-tiny-llama-Q8_0.gguf', 'demo-tiny-llama-lora/README.md', 'demo-tiny-llama-lora/adapter_config.json', 'demo-tiny-llama-lora/adapter_model.safetensors'].sort(),
    );
    expect(readdirSync(join(out, 'checkpoints')).some((f) => f.endsWith('.safetensors'))).toBe(true);

    // The adapter folder re-reads as PEFT's: the recipe's LoRA on every linear, B trained away from its zero init.
    adapterDir = join(out, 'demo-tiny-llama-lora');
    const { adapter } = await readAdapter(adapterDir);
    expect(adapter.settings).toMatchObject({ r: 16, loraAlpha: 16, useRslora: true, baseModelNameOrPath: 'webtune/demo-tiny-llama' });
    expect(adapter.modules.size).toBe(arch.layers * 7);
    const bNorm = Math.hypot(...[...adapter.modules.values()].flatMap((m) => Array.from(m.b)));
    expect(bNorm).toBeGreaterThan(0);

    // The GGUF re-reads: llama, the adapter merged, Q8_0 linears, the training template (ChatML) inside.
    ggufPath = join(out, 'demo-tiny-llama-Q8_0', 'demo-tiny-llama-Q8_0.gguf');
    const g = await openGguf(new Uint8Array(readFileSync(ggufPath)));
    expect(g.get('general.architecture')).toBe('llama');
    expect(g.get('general.name')).toBe('webtune/demo-tiny-llama (LoRA merged)');
    expect(g.get('llama.block_count')).toBe(arch.layers);
    expect(String(g.get('tokenizer.chat_template'))).toContain('<|im_start|>');
    expect(ggmlTypeName(g.tensors.find((t) => t.name === 'blk.0.attn_v.weight')!.type)).toBe('Q8_0');
    expect(await g.readTensorF32('blk.1.ffn_down.weight')).toHaveLength(arch.hidden * arch.intermediate);

    const ms = s.map((m) => m.elapsedMs);
    console.log(
      `tune e2e: ${sum.dataset.trainRows} rows of 128 tokens; losses ${s.map((m) => m.loss.toFixed(4)).join(', ')}; ` +
        `step 1 at ${(ms[0] / 1000).toFixed(1)} s (shaders), then ${((ms[2] - ms[0]) / 2000).toFixed(2)} s/step; ` +
        `${sum.tokensPerSecond.toFixed(0)} tokens/s; peak ${sum.peakGpuMemoryBytes} B; run ${first.seconds.toFixed(1)} s with the build`,
    );
  });

  it('--resume --max-steps 5 continues from the checkpoint of step 3, with the first run\'s model and data', async () => {
    expect(first?.code).toBe(0);
    // Only the output folder and the new length: the model, data and preparation come from DIR/tune-run.json.
    const r = await tune(['--resume', '--out', out, '--cache-dir', cache, '--max-steps', '5'], false);
    expect(r.code, r.stderr).toBe(0);
    const s = steps(r);
    expect(s.map((m) => m.step)).toEqual([4, 5]);
    expect(s.every((m) => m.totalSteps === 5 && Number.isFinite(m.loss))).toBe(true);
    // The prepared dataset was found, not tokenized again.
    expect(ofType(r, 'progress').filter((p) => p.stage === 'prepare').map((p) => p.phase)).toContain('cached');
    const sum = summaryOf(r);
    expect(sum).toMatchObject({ stopped: 'done', steps: 5, stepsThisRun: 2, resumedFromStep: 3, checkpoint: { step: 5 }, dataset: { cached: true } });
    expect(r.stderr).toMatch(/Continuing from step 3 in a run now 5 steps long/);
    console.log(`tune e2e resume: losses ${s.map((m) => m.loss.toFixed(4)).join(', ')}; ${r.seconds.toFixed(1)} s`);
  });

  it('--adapter DIR --export gguf:q8_0 exports the saved adapter without training, to the same GGUF (quantized on the GPU this time)', async () => {
    expect(first?.code).toBe(0);
    // The training run chose by itself (auto: the pool on a software GPU such as lavapipe);
    // --quantizer gpu takes the GPU whatever it is, and must give the same bytes.
    expect(first.stderr).toMatch(/GGUF quantization in the worker pool: the GPU is a software one|GGUF quantization \(.*\) on the GPU/);
    const again = join(root, 'again');
    const r = await tune(['--model', 'demo', '--adapter', adapterDir, '--template', 'chatml', '--export', 'gguf:q8_0', '--out', again, '--quantizer', 'gpu'], false);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/GGUF quantization \(Q4_K, Q5_K, Q6_K, Q8_0\) on the GPU/);
    expect(steps(r)).toEqual([]);
    expect(ofType(r, 'progress').every((p) => p.stage === 'export')).toBe(true);
    const sum = summaryOf(r);
    expect(sum).toMatchObject({ stopped: 'exported', steps: 0 });
    const gguf = join(again, 'demo-tiny-llama-Q8_0', 'demo-tiny-llama-Q8_0.gguf');
    expect((sum.files as { path: string }[]).map((f) => f.path)).toContain(gguf);
    // The adapter read back from its folder merges into the very bytes exported right after training.
    expect(Buffer.compare(readFileSync(gguf), readFileSync(ggufPath))).toBe(0);
  });

  it('--model from a Hub (the mock Hub) is kept under --cache-dir: the same export works again with the Hub gone', async () => {
    expect(first?.code).toBe(0);
    const hub = await startMockHub({ mounts: { models: { 'webtune/demo-hub': DEMO } } });
    const hubCache = join(root, 'hub-cache');
    const args = (dir: string) => ['--model', 'webtune/demo-hub', '--endpoint', hub.url, '--cache-dir', hubCache, '--adapter', adapterDir, '--export', 'gguf:q8_0', '--out', join(root, dir)];
    let online: Lines;
    try {
      online = await tune(args('hub-1'), false);
      expect(online.code, online.stderr).toBe(0);
      expect(hub.requests.some((r) => r.url.includes('/resolve/') && r.url.endsWith('/model.safetensors'))).toBe(true);
    } finally {
      await hub.close();
    }
    expect(readdirSync(join(hubCache, 'models')).length).toBeGreaterThan(0);
    const offline = await tune(args('hub-2'), false);
    expect(offline.code, offline.stderr).toBe(0);
    expect(offline.stderr).toMatch(/The Hub could not be reached: using the cached listing/);
    // No --template: the tokenizer's own template, which has no Ollama form, so no Modelfile and a lone file in DIR.
    expect(offline.stderr).toMatch(/No --template given/);
    const gguf = (dir: string) => readFileSync(join(root, dir, 'demo-hub-Q8_0.gguf'));
    expect(Buffer.compare(gguf('hub-2'), gguf('hub-1'))).toBe(0);
    expect((await openGguf(new Uint8Array(gguf('hub-2')))).get('general.name')).toBe('webtune/demo-hub (LoRA merged)');
  });

  it('--export adapter,bundle --push-to-hub: the run bundle re-reads (train.py compiles, the records of the trained rows) and the adapter lands on the Hub byte for byte', async () => {
    expect(first?.code).toBe(0);
    const hub = await startMockHub();
    const dir = join(root, 'bundle-run');
    let r: Lines;
    try {
      r = await tune(['--model', 'demo', '--data', 'demo', '--max-steps', '3', '--out', dir, '--cache-dir', cache, ...SMALL, '--export', 'adapter,bundle', '--push-to-hub', 'demo-tuned', '--private', '--endpoint', hub.url], false, { HF_TOKEN: 'hf_mock_write' });
      expect(r.code, r.stderr).toBe(0);
      const sum = summaryOf(r);
      expect(sum.hub).toMatchObject({ repo: 'mock-user/demo-tuned', url: `${hub.url}/mock-user/demo-tuned`, created: true });
      expect(r.stderr).toContain(`to ${hub.url}/mock-user/demo-tuned`);
      const uploads = ofType(r, 'progress').filter((p) => p.stage === 'upload');
      expect(uploads.map((p) => p.phase)).toEqual(expect.arrayContaining(['checking', 'done']));
      // Every file of the adapter folder reads back from the Hub as written; the folder's own card is the README.
      const adapter = join(dir, 'demo-tiny-llama-lora');
      const local = readdirSync(adapter).sort();
      expect((sum.hub.files as { path: string }[]).map((f) => f.path).sort()).toEqual(local);
      for (const name of local) {
        const res = await fetch(`${hub.url}/mock-user/demo-tuned/resolve/main/${name}`, { headers: { Authorization: 'Bearer hf_mock_write' } });
        expect(res.status, name).toBe(200);
        expect(Buffer.compare(Buffer.from(await res.arrayBuffer()), readFileSync(join(adapter, name))), name).toBe(0);
      }
      const info = await (await fetch(`${hub.url}/api/models/mock-user/demo-tuned`, { headers: { Authorization: 'Bearer hf_mock_write' } })).json();
      expect(info.private).toBe(true);

      // The bundle: a zip next to the exports, with the run's rows and settings.
      expect(sum.bundle).toMatchObject({ layout: 'zip', path: join(dir, 'demo-tiny-llama-run-bundle.zip') });
      const zip = unzipSync(new Uint8Array(readFileSync(sum.bundle.path)));
      expect(statSync(sum.bundle.path).size).toBe(sum.bundle.bytes);
      for (const f of ['train.py', 'studio_data.py', 'axolotl.yaml', 'README.md', 'data/train.jsonl', 'data/rows.json', 'tokenizer/tokenizer.json', 'adapter/adapter_model.safetensors']) expect(zip[f], f).toBeDefined();
      const unpacked = join(root, 'bundle-unpacked');
      for (const [name, bytes] of Object.entries(zip)) {
        mkdirSync(join(unpacked, name, '..'), { recursive: true });
        writeFileSync(join(unpacked, name), bytes);
      }
      execFileSync('python3', ['-m', 'py_compile', join(unpacked, 'train.py'), join(unpacked, 'studio_data.py')]);
      const text = (name: string) => new TextDecoder().decode(zip[name]);
      const rows = JSON.parse(text('data/rows.json'));
      expect(rows.train.rows).toBe(sum.dataset.trainRows);
      expect(rows.seq_length).toBe(128);
      const lines = text('data/train.jsonl').trim().split('\n');
      expect(lines.length).toBe(rows.train.docs_per_row.reduce((a: number, b: number) => a + b, 0));
      // Each line is a conversation of the demo data (ShareGPT there, messages here), the same words in the same turns.
      const source = new Set(readFileSync('public/demo/data/sort-words.jsonl', 'utf8').trim().split('\n').map((l) => JSON.stringify(JSON.parse(l).conversations.map((c: { value: string }) => c.value))));
      for (const l of lines) expect(source.has(JSON.stringify(JSON.parse(l).messages.map((m: { content: string }) => m.content))), l).toBe(true);
      expect(text('train.py')).toContain('accelerate');
      expect(text('axolotl.yaml')).toMatch(/lora_model_dir:/);
      expect(JSON.parse(text('tokenization.json'))).toMatchObject({ template_id: 'chatml', max_seq_length: 128 });
    } finally {
      await hub.close();
    }
    console.log(`tune e2e bundle + push: ${r.seconds.toFixed(1)} s`);
  });

  it('--push-to-hub with a read-only token: one sentence that says so, exit code 2, the export on disk', async () => {
    expect(first?.code).toBe(0);
    const hub = await startMockHub();
    const dir = join(root, 'push-read-only');
    try {
      const r = await tune(['--model', 'demo', '--adapter', adapterDir, '--export', 'adapter', '--push-to-hub', 'demo-denied', '--endpoint', hub.url, '--out', dir], false, { HF_TOKEN: 'hf_mock_read' });
      expect(r.code, r.stderr).toBe(2);
      const errors = r.stderr.split('\n').filter((l) => l.startsWith('tune: '));
      expect(errors).toEqual([expect.stringMatching(/^tune: This token of mock-user is read-only: uploading needs a token with the "write" role/)]);
      expect(readdirSync(join(dir, 'demo-tiny-llama-lora'))).toContain('adapter_model.safetensors');
      expect(hub.requests.some((q) => q.url.includes('/commit/'))).toBe(false);
    } finally {
      await hub.close();
    }
  });

  it('bad input: one readable line on stderr, nothing on stdout, exit code 2', async () => {
    const cases: [string[], RegExp][] = [
      [['--model', 'demo', '--data', 'demo', '--out', out, '--lora-r', 'abc'], /^tune: --lora-r wants a whole number ≥ 1, got "abc"\.$/],
      [['--model', 'demo', '--data', 'demo', '--out', out, '--lora-rank', '8'], /^tune: Unknown flag --lora-rank\. Did you mean --lora-r\?/],
      [['--model', join(root, 'no-such-model'), '--data', 'demo', '--out', join(root, 'x')], /^tune: --model .*no-such-model: there is no such folder\.$/],
      // A fresh run does not write over a run that has checkpoints.
      [['--model', 'demo', '--data', 'demo', '--out', out, '--cache-dir', cache], /^tune: .*checkpoints already holds a checkpoint \(step 5 of 5\): --resume continues it/],
      // No token for --push-to-hub: said before any training.
      [['--model', 'demo', '--data', 'demo', '--out', join(root, 'y'), '--export', 'adapter', '--push-to-hub', 'x'], /^tune: --push-to-hub needs an access token with the "write" role in the HF_TOKEN environment variable/],
    ];
    for (const [args, message] of cases) {
      const r = await tune(args, false, { HF_TOKEN: '' });
      expect(r.code, r.stderr).toBe(2);
      expect(r.stdout).toBe('');
      const errors = r.stderr.split('\n').filter((l) => l.startsWith('tune: '));
      expect(errors, r.stderr).toHaveLength(1);
      expect(errors[0]).toMatch(message);
    }
  });
});
