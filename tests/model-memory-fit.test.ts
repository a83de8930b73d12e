// The Model tab's out-of-memory verdicts (src/ui/model/memory-fit.ts) and GPU memory budget
// (gpu-budget.ts): the planner's totals against a budget, what to change, and where the budget
// comes from. Also the Hub search's texts (hub-search-text.ts). Pure functions, no DOM.
import { describe, expect, it } from 'vitest';
import { HubError } from '../src/io/hub.ts';
import { parseModelConfig, type ModelArch } from '../src/engine/arch.ts';
import { MODEL_PRESETS, presetViews } from '../src/engine/presets.ts';
import { DEFAULT_GPU_MEMORY_GB, detectGpuMemory, GIB, gpuBudget, parseGpuMemoryGb } from '../src/ui/model/gpu-budget.ts';
import { resultFacts, SEARCH_LIMIT, searchErrorText, searchStatusText } from '../src/ui/model/hub-search-text.ts';
import { fitVerdict, planLinesWithBudget, presetNeeds, presetVerdicts, runBytes, TIGHT_SHARE, type PlanGpu } from '../src/ui/model/memory-fit.ts';

// A desktop GPU as Chrome reports it, and SwiftShader (no shader-f16, the spec's default limits).
const DESKTOP: PlanGpu = { f16: true, limits: { maxBufferSize: 4294967296, maxStorageBufferBindingSize: 2147483644 } as NonNullable<PlanGpu>['limits'] };
const SOFTWARE: PlanGpu = { f16: false, limits: { maxBufferSize: 268435456, maxStorageBufferBindingSize: 134217728 } as NonNullable<PlanGpu>['limits'] };

const arch = (id: string): ModelArch => parseModelConfig(MODEL_PRESETS.find((p) => p.id === id)!.config);
const SMOL = 'HuggingFaceTB/SmolLM2-135M-Instruct';
const LLAMA8B = 'unsloth/Meta-Llama-3.1-8B-bnb-4bit';
const DEMO = 'webtune/demo-tiny-llama';

describe('fitVerdict', () => {
  it("judges the same total the trainer worker shows for each preset", () => {
    for (const gpu of [DESKTOP, SOFTWARE]) {
      const shown = new Map(presetViews(gpu).map((p) => [p.id, p.memoryBytes]));
      for (const need of presetNeeds(gpu)) expect(need.needBytes).toBe(shown.get(need.id));
    }
  });

  it('over the budget: by how much, and changes that each fit when planned again', () => {
    const a = arch(SMOL);
    const budget = 1 * GIB;
    const need = runBytes(a, DESKTOP);
    const v = fitVerdict(a, DESKTOP, budget, presetNeeds(DESKTOP));
    expect(v.level).toBe('over');
    expect(v.needBytes).toBe(need);
    expect(v.headline).toMatch(/^Will not fit: the default run needs ≈ [\d.]+ GiB, [\d.]+ (GiB|MiB) more than the 1\.0 GiB of GPU memory set in the GPU section\.$/);
    expect(v.changes).toEqual([
      expect.stringMatching(/^Batch size 2 in the Train tab \(≈ [\d.]+ MiB; Accumulation 8 keeps 16 rows per step\)\.$/),
      expect.stringMatching(/^Max length 512 tokens when preparing the data in the Data tab \(≈ [\d.]+ MiB\)\.$/),
    ]);
    // What it suggests fits with room; the next step up would not.
    expect(runBytes(a, DESKTOP, { batchSize: 2 })).toBeLessThanOrEqual(TIGHT_SHARE * budget);
    expect(runBytes(a, DESKTOP, { batchSize: 4 })).toBeGreaterThan(TIGHT_SHARE * budget);
    expect(runBytes(a, DESKTOP, { seqLen: 512 })).toBeLessThanOrEqual(TIGHT_SHARE * budget);
    expect(runBytes(a, DESKTOP, { seqLen: 1024 })).toBeGreaterThan(TIGHT_SHARE * budget);
  });

  it('suggests a smaller preset that fits, and says when no setting is enough', () => {
    const v = fitVerdict(arch(LLAMA8B), DESKTOP, 8 * GIB, presetNeeds(DESKTOP));
    expect(v.level).toBe('over');
    expect(v.changes.at(-1)).toMatch(/^A smaller model: .+ \(≈ [\d.]+ GiB\)\.$/);
    const named = presetNeeds(DESKTOP).find((p) => v.changes.at(-1)!.includes(p.label))!;
    expect(named.needBytes).toBeLessThanOrEqual(TIGHT_SHARE * 8 * GIB);
    expect(named.params).toBeLessThan(arch(LLAMA8B).params.total);

    const none = fitVerdict(arch(LLAMA8B), DESKTOP, 0.5 * GIB, presetNeeds(DESKTOP));
    expect(none.changes).toEqual([
      expect.stringMatching(/^A smaller model: even batch size 1 at 256 tokens needs ≈ [\d.]+ GiB with this one \(or set the GPU memory higher, if this GPU has more\)\.$/),
    ]);
  });

  it('near the limit is tight, with what leaves room; well under it fits with nothing to change', () => {
    const a = arch(SMOL);
    const need = runBytes(a, DESKTOP);
    const tight = fitVerdict(a, DESKTOP, need / 0.95, presetNeeds(DESKTOP));
    expect(tight.level).toBe('tight');
    expect(tight.headline).toMatch(/^Tight: the default run needs ≈ [\d.]+ GiB of the [\d.]+ GiB set in the GPU section \(95%\), and the browser and the driver need memory too\.$/);
    expect(tight.changes.length).toBeGreaterThan(0);
    const fits = fitVerdict(a, DESKTOP, 2 * need, presetNeeds(DESKTOP));
    expect(fits.level).toBe('fits');
    expect(fits.changes).toEqual([]);
    expect(fitVerdict(a, DESKTOP, need, presetNeeds(DESKTOP)).level).toBe('tight'); // exactly full is not over
  });

  it('presetVerdicts covers every preset; the demo fits anywhere', () => {
    const verdicts = presetVerdicts(SOFTWARE, 1 * GIB);
    expect([...verdicts.keys()].sort()).toEqual(MODEL_PRESETS.map((p) => p.id).sort());
    expect(verdicts.get(DEMO)!.level).toBe('fits');
    expect(verdicts.get(LLAMA8B)!.level).toBe('over');
  });

  it("drops the planner's 'GPU memory unknown' line, now that there is a budget", () => {
    const lines = presetViews(DESKTOP)[0].planLines;
    expect(lines.some((l) => l.startsWith('GPU memory unknown'))).toBe(true);
    const kept = planLinesWithBudget(lines);
    expect(kept).toHaveLength(lines.length - 1);
    expect(kept.some((l) => l.startsWith('total:'))).toBe(true);
  });
});

describe('gpu budget', () => {
  const adapter = (description: string, vendor = 'nvidia', architecture = '') => ({ vendor, architecture, description });

  it('a value the person set wins', () => {
    expect(gpuBudget(12, adapter('NVIDIA GeForce RTX 4090'))).toEqual({ gb: 12, bytes: 12 * GIB, source: 'set', note: 'set by you, saved in this browser' });
  });

  it('detects the memory from names that come in one size only', () => {
    expect(detectGpuMemory(adapter('NVIDIA GeForce RTX 4090'))).toEqual({ gb: 24, note: "detected from the GPU's name (RTX 4090)" });
    expect(detectGpuMemory(adapter('NVIDIA H100 NVL'))?.gb).toBe(94);
    expect(detectGpuMemory(adapter('NVIDIA H100 80GB HBM3'))?.gb).toBe(80);
    expect(gpuBudget(null, adapter('NVIDIA H200')).source).toBe('detected');
    expect(detectGpuMemory(adapter('NVIDIA GeForce RTX 4060'))).toBeNull(); // 8 or 16 GB
    expect(detectGpuMemory(adapter('', 'nvidia', 'lovelace'))).toBeNull(); // Chrome hides the description
  });

  it('a software GPU uses system memory, as far as the browser tells', () => {
    const swiftshader = adapter('SwiftShader Device (Subzero)', 'google', 'swiftshader');
    expect(detectGpuMemory(swiftshader, 8)).toEqual({ gb: 8, note: 'a software GPU using system memory; this browser reports at least 8 GB' });
    expect(detectGpuMemory(swiftshader, undefined)).toBeNull();
  });

  it('otherwise assumes a common size and says to set it', () => {
    const b = gpuBudget(null, adapter('', 'amd', 'rdna-3'));
    expect(b).toMatchObject({ gb: DEFAULT_GPU_MEMORY_GB, bytes: DEFAULT_GPU_MEMORY_GB * GIB, source: 'default' });
    expect(b.note).toBe('assumed: WebGPU does not report GPU memory, so set yours.');
    expect(gpuBudget(null, adapter('', 'apple', 'metal-3')).note).toMatch(/Apple GPUs share the system memory/);
    expect(gpuBudget(null, null).source).toBe('default');
  });

  it('parses the GB field, with a sentence for what it refuses', () => {
    expect(parseGpuMemoryGb(' 24 ')).toEqual({ ok: true, gb: 24 });
    expect(parseGpuMemoryGb('1,5')).toEqual({ ok: true, gb: 1.5 });
    for (const bad of ['', 'lots', '0', '-4', '5000']) {
      expect(parseGpuMemoryGb(bad)).toEqual({ ok: false, error: 'Enter the GPU memory in GB, a number from 0.25 to 4096 (e.g. 8 or 24).' });
    }
  });
});

describe('hub search texts', () => {
  it('facts of a result: task, downloads, likes (what the Hub gave)', () => {
    expect(resultFacts({ id: 'a/b', pipeline_tag: 'text-generation', downloads: 1_234_567, likes: 1 })).toBe('text-generation · 1.2M downloads · 1 like');
    expect(resultFacts({ id: 'a/b' })).toBe('');
  });

  it('the status line: hint, too short, searching, none, how many', () => {
    const s = { host: 'huggingface.co', searching: false, results: undefined };
    expect(searchStatusText({ ...s, query: '' })).toMatch(/^Search the models on huggingface\.co by name/);
    expect(searchStatusText({ ...s, query: 'l' })).toBe('Type at least 2 characters.');
    expect(searchStatusText({ ...s, query: 'll', searching: true })).toBe('Searching huggingface.co…');
    expect(searchStatusText({ ...s, query: 'zzz', results: [] })).toMatch(/^No model on huggingface\.co has “zzz” in its id: check the spelling/);
    expect(searchStatusText({ ...s, query: 'llama', results: [{ id: 'a/b' }] })).toBe('1 model.');
    const many = Array.from({ length: SEARCH_LIMIT }, (_, i) => ({ id: `a/${i}` }));
    expect(searchStatusText({ ...s, query: 'llama', results: many })).toMatch(/^20 models \(the first 20, most downloaded first: type more to narrow them\)\.$/);
  });

  it('errors: offline (browser offline, or the host unreachable) and the Hub client sentences', () => {
    const offline = new HubError('offline', 'Cannot reach huggingface.co: check the connection (the demo model works offline).', 0, 'https://huggingface.co/api/models');
    expect(searchErrorText(offline, false)).toMatch(/^This browser is offline: the Hub search needs a connection\. Reconnect and search again/);
    expect(searchErrorText(offline, true)).toBe(
      'Cannot reach huggingface.co: check the connection (the demo model works offline), or the Hub base URL in Settings.',
    );
    const limited = new HubError('rate-limited', 'huggingface.co is limiting requests: wait 5 s and try again.', 429, 'u');
    expect(searchErrorText(limited, true)).toBe('The search failed: huggingface.co is limiting requests: wait 5 s and try again.');
  });
});
