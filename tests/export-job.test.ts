// The export job (src/io/export-job.ts) on the demo model with a random adapter, written to a memory
// sink and read back with our own readers: the adapter zip (fflate + readPeftAdapter), the merged
// bf16 model (safetensors reader, against mergeLora), a GGUF with its Modelfile (gguf-read), the
// sizes the pickers show, progress, and the refusals that must come before any work.
import { unzipSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import { bf16ArrayToF32, f32ArrayToBf16 } from '../src/io/dtype.ts';
import { openGguf } from '../src/io/gguf-read.ts';
import { ExportError, exportSizes, planExport, runExport, GGUF_EXPORT_TYPES, type ExportProgress } from '../src/io/export-job.ts';
import { mergeLora } from '../src/io/merge.ts';
import { loraScaling, readPeftAdapter } from '../src/io/peft.ts';
import { bytesSource, openSafetensors } from '../src/io/safetensors.ts';
import { MemorySink } from '../src/io/sink.ts';
import { GGMLType } from '../src/io/quants/index.ts';
import { firstDiff } from './fixtures/gguf/helpers.ts';
import { demoExportModel, randomAdapter } from './export-helpers.ts';

const NOW = new Date('2026-12-01T12:00:00Z');

async function rejection(f: () => unknown): Promise<ExportError> {
  try {
    await f();
  } catch (e) {
    expect(e).toBeInstanceOf(ExportError);
    return e as ExportError;
  }
  throw new Error('expected an ExportError');
}

describe('adapter export', () => {
  it('one .zip holding adapter_config.json, adapter_model.safetensors and a README that re-read as the adapter', async () => {
    const model = await demoExportModel();
    const adapter = randomAdapter(model.arch, 11);
    const plan = planExport(model, adapter, { kind: 'adapter', card: { steps: 8, finalLoss: 1.25 } }, { now: NOW });
    expect([plan.layout, plan.name]).toEqual(['file', 'demo-tiny-llama-lora.zip']);
    const sink = new MemorySink();
    const r = await runExport(plan, sink);
    expect(model.base.reads).toBe(0); // an adapter export never reads the base weights
    const zip = sink.files.get('demo-tiny-llama-lora.zip')!;
    expect(r.bytes).toBe(zip.length);
    expect(plan.totalBytes).toBeGreaterThanOrEqual(zip.length); // the estimate is an upper bound
    expect(plan.totalBytes - zip.length).toBeLessThan(4096);
    const files = unzipSync(zip);
    expect(Object.keys(files).sort()).toEqual(['README.md', 'adapter_config.json', 'adapter_model.safetensors']);
    const back = await readPeftAdapter({ config: new TextDecoder().decode(files['adapter_config.json']), weights: files['adapter_model.safetensors'] }, model.arch);
    expect(back.adapter.settings.baseModelNameOrPath).toBe('webtune/demo-tiny-llama');
    expect(back.adapter.modules.size).toBe(adapter.modules.size);
    for (const [path, m] of adapter.modules) {
      expect(firstDiff(back.adapter.modules.get(path)!.a, m.a), path).toBe(-1);
      expect(firstDiff(back.adapter.modules.get(path)!.b, m.b), path).toBe(-1);
    }
    const readme = new TextDecoder().decode(files['README.md']);
    expect(readme).toContain('base_model: webtune/demo-tiny-llama');
    expect(readme).toContain('| chat template | chatml |');
    expect(readme).toContain('| final training loss | 1.25 |');
    expect(readme).toContain('on 2026-12-01');
  });

  it('or the three files in a folder', async () => {
    const model = await demoExportModel();
    const plan = planExport(model, randomAdapter(model.arch, 3), { kind: 'adapter', adapterLayout: 'folder' });
    expect([plan.layout, plan.name, plan.files.map((f) => f.name)]).toEqual(['folder', 'demo-tiny-llama-lora', ['adapter_config.json', 'adapter_model.safetensors', 'README.md']]);
    const sink = new MemorySink();
    const r = await runExport(plan, sink);
    expect(r.bytes).toBe(plan.totalBytes); // exact without a zip
  });
});

describe('merged 16-bit export', () => {
  it('bf16 shards whose target tensors are bf16(W + scale·B·A) and the rest bf16(W), with config, tokenizer and README', async () => {
    const model = await demoExportModel();
    const adapter = randomAdapter(model.arch, 21);
    const plan = planExport(model, adapter, { kind: 'merged', dtype: 'bfloat16' });
    expect([plan.layout, plan.name]).toEqual(['folder', 'demo-tiny-llama-merged-bf16']);
    expect(plan.notes).toEqual(['Merged into the original base weights, as stored in the checkpoint.']);
    const sink = new MemorySink();
    const r = await runExport(plan, sink);
    expect(r.bytes).toBe(plan.totalBytes);
    expect([...sink.files.keys()].sort()).toEqual(['README.md', 'config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
    const st = await openSafetensors(bytesSource(sink.files.get('model.safetensors')!));
    expect(st.tensors.length).toBe(model.tensors.length);
    const scale = loraScaling(adapter.settings);
    const q = 'model.layers.1.self_attn.q_proj';
    const m = adapter.modules.get(q)!;
    const w = await model.base.read(`${q}.weight`);
    const want = bf16ArrayToF32(f32ArrayToBf16(mergeLora(w, m.a, m.b, 64, 64, 8, scale)));
    expect(firstDiff(await st.readF32(`${q}.weight`), want)).toBe(-1);
    expect(firstDiff(await st.readF32(`${q}.weight`), bf16ArrayToF32(f32ArrayToBf16(w)))).toBeGreaterThanOrEqual(0); // the adapter changed it
    const norm = await model.base.read('model.norm.weight');
    expect(firstDiff(await st.readF32('model.norm.weight'), bf16ArrayToF32(f32ArrayToBf16(norm)))).toBe(-1);
    const config = JSON.parse(new TextDecoder().decode(sink.files.get('config.json')!));
    expect(config.torch_dtype).toBe('bfloat16');
    const tc = JSON.parse(new TextDecoder().decode(sink.files.get('tokenizer_config.json')!));
    expect(tc.chat_template).toBe(model.template!.exportSource);
    const readme = new TextDecoder().decode(sink.files.get('README.md')!);
    expect(readme).toContain('library_name: transformers');
    expect(readme).toContain('Merged into the original base weights');
    expect(readme).toContain('| r | 8 |');
  });

  it('the card says what the base really was: float32, not "16-bit"; the declared dtype, or none when config.json has none', async () => {
    const demo = await demoExportModel();
    const card = async (config: Record<string, unknown>): Promise<string> => {
      const sink = new MemorySink();
      await runExport(planExport({ ...demo, config }, randomAdapter(demo.arch, 5), { kind: 'merged' }), sink);
      return new TextDecoder().decode(sink.files.get('README.md')!);
    };
    const f32 = await card({ ...demo.config, torch_dtype: 'float32' });
    expect(f32).toContain('Merged into the original base weights (float32), as stored in the checkpoint.');
    expect(f32).not.toMatch(/16-bit/);
    expect(await card({ ...demo.config, torch_dtype: undefined, dtype: 'float16' })).toContain('original base weights (float16)');
    const unknown = await card({ ...demo.config, torch_dtype: undefined });
    expect(unknown).toContain('Merged into the original base weights, as stored in the checkpoint.');
    expect(unknown).not.toMatch(/16-bit/);
  });

  it('config.json keeps the source text\'s numbers (ExportModel.configText): rope_scaling.factor 8.0 stays a float', async () => {
    const demo = await demoExportModel();
    const configText = JSON.stringify({ ...demo.config, rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 128 } }, null, 2).replace(/("(?:factor|low_freq_factor|high_freq_factor)": \d+)/g, '$1.0');
    const sink = new MemorySink();
    await runExport(planExport({ ...demo, config: JSON.parse(configText), configText }, randomAdapter(demo.arch, 6), { kind: 'merged' }), sink);
    const text = new TextDecoder().decode(sink.files.get('config.json')!);
    expect(text).toMatch(/"factor": 8\.0,/);
    expect(text).toMatch(/"low_freq_factor": 1\.0,/);
    expect(JSON.parse(text).torch_dtype).toBe('bfloat16');
  });

  it('says when it merged into dequantized NF4', async () => {
    const model = { ...(await demoExportModel()), baseOrigin: 'nf4' as const };
    const plan = planExport(model, randomAdapter(model.arch, 2), { kind: 'merged', dtype: 'float16' });
    expect(plan.name).toBe('demo-tiny-llama-merged-f16');
    expect(plan.notes[0]).toMatch(/dequantized NF4/);
    const sink = new MemorySink();
    await runExport(plan, sink);
    expect(new TextDecoder().decode(sink.files.get('README.md')!)).toMatch(/dequantized NF4 base weights/);
  });
});

describe('GGUF export', () => {
  it('q8_0 and a Modelfile: the GGUF re-reads with our reader, holds the template, and is as large as planned', async () => {
    const model = await demoExportModel();
    const adapter = randomAdapter(model.arch, 31);
    const plan = planExport(model, adapter, { kind: 'gguf', ggufType: 'q8_0' });
    expect([plan.layout, plan.name, plan.files.map((f) => f.name)]).toEqual(['folder', 'demo-tiny-llama-Q8_0', ['demo-tiny-llama-Q8_0.gguf', 'Modelfile']]);
    const sink = new MemorySink();
    const progress: ExportProgress[] = [];
    const r = await runExport(plan, sink, { onProgress: (p) => progress.push(p), progressIntervalMs: 0 });
    expect(r.bytes).toBe(plan.totalBytes);
    const bytes = sink.files.get('demo-tiny-llama-Q8_0.gguf')!;
    expect(bytes.length).toBe(plan.files[0].size);
    const g = await openGguf(bytes);
    expect(g.get('general.architecture')).toBe('llama');
    expect(g.get('general.file_type')).toBe(7);
    expect(g.get('general.name')).toBe('webtune/demo-tiny-llama (LoRA merged)');
    expect(g.get('tokenizer.chat_template')).toBe(model.template!.exportSource);
    expect(g.get('general.description')).toBe('Merged into the original base weights, as stored in the checkpoint. Exported by WebTune Studio.');
    expect(g.tensors.length).toBe(model.tensors.length);
    // Rows of 64 are Q8_0; ffn_down's rows of 172 fall back to F16; norms F32.
    const types = new Set(g.tensors.map((t) => t.type));
    expect([...types].sort()).toEqual([GGMLType.F32, GGMLType.F16, GGMLType.Q8_0].sort());
    for (const t of g.tensors) expect(t.fileOffset % g.alignment).toBe(0);
    expect(firstDiff(await g.readTensorF32('output_norm.weight'), await model.base.read('model.norm.weight'))).toBe(-1);
    const modelfile = new TextDecoder().decode(sink.files.get('Modelfile')!);
    expect(modelfile.split('\n')[0]).toBe('FROM ./demo-tiny-llama-Q8_0.gguf');
    expect(modelfile).toContain('<|im_start|>assistant');
    expect(modelfile).toContain('PARAMETER stop "<|im_end|>"');
    // Progress: phases in order, bytes never go back, the end is exact.
    const phases = progress.map((p) => p.phase).filter((p, i, a) => i === 0 || a[i - 1] !== p);
    expect(phases).toEqual(['writing', 'finishing', 'done']);
    for (let i = 1; i < progress.length; i++) expect(progress[i].bytesDone).toBeGreaterThanOrEqual(progress[i - 1].bytesDone);
    const last = progress[progress.length - 1];
    expect([last.bytesDone, last.bytesTotal, last.filesDone, last.filesTotal, last.etaSeconds]).toEqual([plan.totalBytes, plan.totalBytes, 2, 2, 0]);
  });

  it('without a Modelfile it is one file; a template Ollama has no form of gets a note instead', async () => {
    const model = await demoExportModel();
    const adapter = randomAdapter(model.arch, 4);
    const lone = planExport(model, adapter, { kind: 'gguf', ggufType: 'f16', modelfile: false });
    expect([lone.layout, lone.name, lone.files.length]).toEqual(['file', 'demo-tiny-llama-F16.gguf', 1]);
    const alpaca = planExport({ ...model, template: { id: 'alpaca', exportSource: '{{ x }}', eosRename: null } }, adapter, { kind: 'gguf', ggufType: 'f16' });
    expect(alpaca.files.length).toBe(1);
    expect(alpaca.notes.join(' ')).toMatch(/No Ollama Modelfile/);
  });

  it('the sizes the picker shows are the sizes written', async () => {
    const model = await demoExportModel();
    const adapter = randomAdapter(model.arch, 5);
    const sizes = exportSizes(model, adapter.settings);
    expect(sizes.ggufProblem).toBeNull();
    expect(Object.keys(sizes.gguf)).toEqual([...GGUF_EXPORT_TYPES]);
    for (const t of ['q8_0', 'q4_k_m'] as const) {
      const sink = new MemorySink();
      const r = await runExport(planExport(model, adapter, { kind: 'gguf', ggufType: t }), sink);
      expect(r.bytes, t).toBe(sizes.gguf[t]);
    }
    expect(sizes.gguf.f16!).toBeGreaterThan(sizes.gguf.q8_0!);
    const merged = await runExport(planExport(model, adapter, { kind: 'merged' }), new MemorySink());
    const readme = merged.files.find((f) => f.name === 'README.md')!.bytes;
    expect(merged.bytes - readme).toBe(sizes.merged.bfloat16);
    const zip = await runExport(planExport(model, adapter, { kind: 'adapter' }), new MemorySink());
    expect(Math.abs(zip.bytes - sizes.adapter!)).toBeLessThan(4096);
  });
});

describe('refused before any work', () => {
  it('no adapter: a clear error for every kind, unless the base model alone is asked for', async () => {
    const model = await demoExportModel();
    for (const kind of ['adapter', 'merged', 'gguf'] as const) {
      const e = await rejection(() => planExport(model, null, { kind }));
      expect(e.reason).toBe('no-adapter');
      expect(e.message).toMatch(/There is no trained adapter to export\. Train one in the Train tab first/);
    }
    const base = planExport(model, null, { kind: 'merged', withoutAdapter: true });
    expect(base.notes).toEqual(['No adapter was merged: this is the base model unchanged.']);
    const sink = new MemorySink();
    await runExport(base, sink);
    const st = await openSafetensors(bytesSource(sink.files.get('model.safetensors')!));
    const w = await model.base.read('model.layers.0.mlp.up_proj.weight');
    expect(firstDiff(await st.readF32('model.layers.0.mlp.up_proj.weight'), bf16ArrayToF32(f32ArrayToBf16(w)))).toBe(-1);
    expect(sink.files.has('README.md')).toBe(false);
    // Asking for it with an adapter leaves the adapter out too.
    const g = planExport(model, randomAdapter(model.arch, 1), { kind: 'gguf', withoutAdapter: true });
    expect(g.notes[0]).toMatch(/base model unchanged/);
    expect((await rejection(() => planExport(model, null, { kind: 'adapter', withoutAdapter: true }))).reason).toBe('bad-request');
  });

  it('an architecture llama.cpp does not know: GGUF refused naming it, with the exports that do work', async () => {
    const model = await demoExportModel();
    const gemma = { ...model, arch: { ...model.arch, family: 'gemma2' } };
    const sink = new MemorySink();
    const e = await rejection(() => planExport(gemma, randomAdapter(model.arch, 1), { kind: 'gguf' }));
    expect(e.reason).toBe('unsupported');
    expect(e.message).toBe('llama.cpp does not know the "gemma2" architecture, so there is no GGUF for it. Export the adapter or the merged 16-bit model instead.');
    expect(model.base.reads).toBe(0);
    expect(sink.partial.size + sink.files.size).toBe(0);
    expect(exportSizes(gemma, null).ggufProblem).toMatch(/gemma2/);
  });

  it('a tokenizer GGUF cannot take, a missing tokenizer, an unknown type or dtype', async () => {
    const model = await demoExportModel();
    const adapter = randomAdapter(model.arch, 1);
    const sp = { ...model, tokenizerJson: { model: { type: 'Unigram', vocab: [] } } };
    const e = await rejection(() => planExport(sp, adapter, { kind: 'gguf' }));
    expect(e.reason).toBe('unsupported');
    expect(e.message).toMatch(/^This model cannot be exported as GGUF: tokenizer\.json model type "Unigram" is not supported/);
    const none = await rejection(() => planExport({ ...model, tokenizerJson: null }, adapter, { kind: 'merged' }));
    expect(none.message).toBe('webtune/demo-tiny-llama has no tokenizer.json, and a merged model needs one. Export the adapter instead.');
    const bad = await rejection(() => planExport(model, adapter, { kind: 'gguf', ggufType: 'q1_0' as never }));
    expect(bad.reason).toBe('bad-request');
    expect(bad.message).toMatch(/q1_0.*one of f16, bf16, q8_0/);
    expect((await rejection(() => planExport(model, adapter, { kind: 'merged', dtype: 'float32' as never }))).reason).toBe('bad-request');
    expect(model.base.reads).toBe(0);
  });
});
