// `--adapter DIR --export …`: exports from a saved PEFT adapter and the base model's files, without
// training (merging runs on the CPU, in the export pool; GGUF k-quants on a GPU when Dawn finds a
// hardware one or --quantizer gpu asks, else in the pool too).
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { Kernels } from '../../src/engine/kernels.ts';
import { nodeGpu } from './gpu.ts';
import { runExports } from './exports.ts';
import { hubSummary, pushExport } from './push.ts';
import { exportableModel, readSavedAdapter } from './saved-adapter.ts';
import type { RunSetup } from './run.ts';
import type { RunOutcome } from './train-run.ts';

export async function exportSavedAdapter(setup: RunSetup): Promise<RunOutcome> {
  const started = performance.now();
  const { args, files, out } = setup;
  const dir = resolve(args.adapter!);
  const model = await exportableModel(files, setup.signal);
  const { adapter, warnings } = await readSavedAdapter(dir, model);
  for (const w of warnings) out.say(`Adapter: ${w}.`);
  const base = adapter.settings.baseModelNameOrPath;
  if (base && base !== files.id) out.say(`The adapter names ${base} as its base; exporting it onto ${files.id}, whose shapes it fits.`);
  const s = adapter.settings;
  out.say(`Adapter: r ${s.r}, alpha ${s.loraAlpha}${s.useRslora ? ', rsLoRA' : ''}, on ${s.targetModules.join(', ')}.`);
  // The template the adapter was trained with is not in a PEFT folder: --template says it.
  const template = args.prepare.template ?? (args.prepare.templateSource !== undefined ? 'custom' : undefined);
  if (!template) out.say("No --template given: the exports carry the tokenizer's own chat template.");
  mkdirSync(setup.outDir, { recursive: true });
  const done = await runExports(
    args.exports,
    {
      loaded: model,
      files,
      lora: { adapter },
      template,
      templateSource: args.prepare.templateSource,
      outDir: setup.outDir,
      signal: setup.signal,
      quantizer: args.quantizer,
      // A GPU only for GGUF quantization: none found is no error unless --quantizer gpu asked for one.
      kernels: async () => {
        try {
          return new Kernels(await nodeGpu((message) => out.say(message)));
        } catch (e) {
          if (args.quantizer === 'gpu') throw e;
          return null;
        }
      },
    },
    out,
  );
  const pushed = args.pushToHub === undefined
    ? null
    : await pushExport(done.results[0].spec, done.results[0].result, {
        repo: args.pushToHub,
        private: args.private === true,
        token: setup.token!,
        endpoint: setup.endpoint,
        card: { baseModel: base ?? files.id, settings: adapter.settings, ...(template ? { template } : {}) },
        signal: setup.signal,
      }, out);
  return {
    exitCode: 0,
    summary: {
      stopped: 'exported',
      model: files.id,
      adapter: dir,
      steps: 0,
      losses: { first: null, last: null },
      files: done.files,
      ...(pushed ? { hub: hubSummary(pushed) } : {}),
      seconds: (performance.now() - started) / 1000,
    },
  };
}
