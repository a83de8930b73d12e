// `--export bundle` / `bundle:folder`: the run bundle of this run (src/io/run-bundle.ts) written into
// the output folder: the prepared dataset's records (its source read again and matched to the
// stored rows), the settings, the template, the tokenizer's files and the trained adapter.
import type { LoraSet } from '../../src/engine/lora-weights.ts';
import type { LoadedModel } from '../../src/engine/loader.ts';
import { adapterFromLora } from '../../src/engine/export-source.ts';
import type { TrainSettings } from '../../src/engine/train/loop.ts';
import { peftAdapterFiles } from '../../src/io/peft.ts';
import { planRunBundle } from '../../src/io/run-bundle.ts';
import { writeRunBundle } from '../../src/io/run-bundle-node.ts';
import { preparedBundleData } from '../../src/io/run-bundle-prepared.ts';
import { openDataSource } from './data-choice.ts';
import type { BundleLayout } from './export-specs.ts';
import type { WrittenFile } from './exports.ts';
import type { PreparedData } from './prepare.ts';
import type { RunSetup } from './run.ts';

export interface BundleRun {
  layout: BundleLayout;
  data: PreparedData;
  settings: TrainSettings;
  loaded: LoadedModel;
  lora: { set: LoraSet; device: GPUDevice };
  /** Optimizer steps behind the adapter. */
  step: number;
  losses: readonly { step: number; loss: number }[];
}

export async function writeBundle(setup: RunSetup, run: BundleRun): Promise<WrittenFile> {
  const { args, out, signal } = setup;
  const t0 = performance.now();
  out.progress('bundle', { phase: 'reading records' });
  const source = await openDataSource(args.data!, { endpoint: setup.endpoint, datasetsServer: args.datasetsServer, token: setup.token, split: args.split, rows: args.rows, config: args.dataConfig }, signal);
  const { manifest, store, tokenizer } = run.data;
  const { data, template, padToken } = await preparedBundleData({
    manifest,
    readShard: (i, split) => store.readShard(manifest.fingerprint, i, split),
    source,
    tokenizer,
    templateSource: args.prepare.templateSource,
    firstRows: run.settings.batchSize * run.settings.gradAccum,
    signal,
  });
  const { loaded } = run;
  const adapter = await adapterFromLora(run.lora.device, loaded.arch, run.lora.set, { id: loaded.summary.id, revision: loaded.summary.revision });
  const plan = await planRunBundle(
    {
      modelId: loaded.summary.id,
      modelType: loaded.arch.modelType,
      baseQuantization: 'nf4', // the runner loads every base as NF4 (QLoRA)
      settings: run.settings,
      prepare: manifest.options,
      template,
      tokenizer: { info: tokenizer.info, padToken, files: tokenizer.files },
      data,
      datasetName: manifest.name,
      adapter: { files: peftAdapterFiles(loaded.arch, { ...adapter, settings: { ...adapter.settings, loraDropout: run.settings.loraDropout ?? 0 } }), step: run.step },
      losses: run.losses,
    },
    run.layout,
  );
  for (const note of plan.notes) out.say(`bundle: ${note}`);
  out.progress('bundle', { phase: 'writing', bytesTotal: plan.totalBytes });
  const written = await writeRunBundle(plan, setup.outDir);
  out.say(`Wrote the run bundle in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${written.path} (${data.train.lines.length} records, ${data.train.rows} rows; see its README.md).`);
  return { path: written.path, bytes: written.bytes };
}
