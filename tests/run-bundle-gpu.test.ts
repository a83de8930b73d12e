// The run bundle of a short demo run against its fixture (tests/fixtures/run-bundle): the bundle
// made now by the studio's code (tools/reference/run_bundle_check.ts: prepare, train 6 steps on
// Dawn, adapter of step 3) must be the committed one file for file, and gpu-result.json, what
// tools/reference/run_bundle_check.sh recorded running that bundle with accelerate on two GPUs,
// must give the studio's losses within 1e-2 relative: step 1 of a fresh run (DDP and FSDP), and
// step 4 from the studio's adapter of step 3.
//
// Writing the fixture anew (after a change to the bundle): RUN_BUNDLE_FIXTURE=write npx vitest run
// --project unit tests/run-bundle-gpu.test.ts, then the GPU run again.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bytesSource, openSafetensors } from '../src/io/safetensors.ts';
import { ADAPTER_STEP, BUNDLE_NAME, fileHashes, makeDemoRunBundle, type StudioRecord } from '../tools/reference/run_bundle_check.ts';
import { testGpu } from './gpu/device.ts';

const FIXTURE = 'tests/fixtures/run-bundle';
const WRITE = process.env.RUN_BUNDLE_FIXTURE === 'write';
const GPU_RESULT = join(FIXTURE, 'gpu-result.json');
const ADAPTER_WEIGHTS = 'adapter/adapter_model.safetensors';

interface Step {
  step: number;
  loss: number;
}
interface Run {
  command: string;
  exit: number;
  /** Tensors of the adapter train.py saved at the end, and their names. */
  adapter_tensors: number;
  adapter_names: string[];
  events: Record<string, unknown>[];
  steps: Step[];
  tail: string[];
}
interface GpuResult {
  gpus: string[];
  versions: Record<string, string>;
  bundle_files: Record<string, string>;
  runs: Record<'ddp' | 'resume' | 'fsdp', Run>;
}

const rel = (a: number, b: number): number => Math.abs(a - b) / Math.abs(b);
const readJson = <T>(p: string): T => JSON.parse(readFileSync(p, 'utf8')) as T;

let out: string;
let made: StudioRecord;
beforeAll(async () => {
  out = WRITE ? FIXTURE : mkdtempSync(join(tmpdir(), 'run-bundle-gpu-'));
  made = await makeDemoRunBundle(out, await testGpu());
}, 600_000);
afterAll(() => {
  if (!WRITE) rmSync(out, { recursive: true, force: true });
});

describe('the demo run bundle fixture', () => {
  it('is what the studio makes now: every file the same, the adapter and losses within float noise', async () => {
    const fixture = join(FIXTURE, BUNDLE_NAME);
    expect(existsSync(fixture), `no fixture bundle: RUN_BUNDLE_FIXTURE=write npx vitest run --project unit tests/run-bundle-gpu.test.ts`).toBe(true);
    const want = fileHashes(fixture);
    const got = fileHashes(join(out, BUNDLE_NAME));
    expect(Object.keys(got)).toEqual(Object.keys(want));
    for (const [path, hash] of Object.entries(got)) if (path !== ADAPTER_WEIGHTS) expect(hash, path).toBe(want[path]);
    // Another GPU may round the adapter's last bits differently.
    const open = async (dir: string) => openSafetensors(bytesSource(new Uint8Array(readFileSync(join(dir, ADAPTER_WEIGHTS))), ADAPTER_WEIGHTS));
    const [a, b] = [await open(fixture), await open(join(out, BUNDLE_NAME))];
    expect(b.tensors.map((t) => t.name)).toEqual(a.tensors.map((t) => t.name));
    for (const t of a.tensors) {
      const [x, y] = [await a.readF32(t.name), await b.readF32(t.name)];
      let top = 0;
      let err = 0;
      for (let i = 0; i < x.length; i++) {
        top = Math.max(top, Math.abs(x[i]));
        err = Math.max(err, Math.abs(x[i] - y[i]));
      }
      expect(err, t.name).toBeLessThanOrEqual(1e-5 * Math.max(top, 1e-3));
    }
    const recorded = readJson<StudioRecord>(join(FIXTURE, 'studio.json'));
    expect(made.losses.map((l) => l.step)).toEqual(recorded.losses.map((l) => l.step));
    made.losses.forEach((l, i) => expect(rel(l.loss, recorded.losses[i].loss)).toBeLessThan(1e-5));
  });
});

describe.skipIf(!existsSync(GPU_RESULT))('the bundle on two GPUs (gpu-result.json from tools/reference/run_bundle_check.sh)', () => {
  const result = existsSync(GPU_RESULT) ? readJson<GpuResult>(GPU_RESULT) : null;
  const studio = () => readJson<StudioRecord>(join(FIXTURE, 'studio.json'));
  const event = (run: Run, name: string) => run.events.find((e) => e.event === name);

  it('ran the committed bundle, on two processes, with the studio\'s tokens, and saved an adapter like the studio\'s', async () => {
    expect(result!.bundle_files).toEqual(fileHashes(join(FIXTURE, BUNDLE_NAME)));
    const studioAdapter = await openSafetensors(bytesSource(new Uint8Array(readFileSync(join(FIXTURE, BUNDLE_NAME, ADAPTER_WEIGHTS))), ADAPTER_WEIGHTS));
    for (const name of ['ddp', 'resume', 'fsdp'] as const) {
      const run = result!.runs[name];
      expect(run.exit, `${name}: ${run.tail.join('\n')}`).toBe(0);
      expect(run.adapter_tensors).toBe(studioAdapter.tensors.length);
      expect(run.adapter_names, `${name}: PEFT's tensor names`).toEqual(studioAdapter.tensors.map((t) => t.name).sort());
      expect(event(run, 'start')).toMatchObject({ world_size: 2, fsdp: name === 'fsdp' });
      expect(event(run, 'data')).toMatchObject({ packing: 'studio', same_tokens: true });
      expect(event(run, 'packed_attention_check')!.max_rel_diff as number).toBeLessThan(1e-3);
    }
  });

  it('a fresh run\'s first loss is the studio\'s within 1e-2 (DDP and FSDP)', () => {
    const want = studio().losses[0];
    for (const name of ['ddp', 'fsdp'] as const) {
      const first = result!.runs[name].steps[0];
      expect(first.step).toBe(1);
      expect(rel(first.loss, want.loss), `${name}: ${first.loss} vs ${want.loss}`).toBeLessThan(1e-2);
    }
  });

  it('from the studio\'s adapter of step 3, the loss of step 4 is the studio\'s within 1e-2', () => {
    const first = result!.runs.resume.steps[0];
    const want = studio().losses[ADAPTER_STEP];
    expect(first.step).toBe(ADAPTER_STEP + 1);
    expect(rel(first.loss, want.loss), `${first.loss} vs ${want.loss}`).toBeLessThan(1e-2);
    expect(result!.runs.resume.steps.map((s) => s.step)).toEqual([4, 5, 6]);
  });
});
