// The page's half of a run bundle: the run's settings and losses (run store), the prepared dataset
// it trained on (dataset store) and that dataset's records, which the data worker reads again from
// the source. The trainer worker adds the model and the adapter (TrainerApi.exportRunBundle).
import { data, type RunBundleRequest } from '../client/index.ts';
import { useDatasetStore } from './dataset.ts';
import { useModelStore } from './model.ts';
import { effectiveSettings, useRunStore } from './run.ts';

export async function runBundleRequest(): Promise<RunBundleRequest> {
  const run = useRunStore.getState();
  const settings = effectiveSettings(run);
  const ds = useDatasetStore.getState();
  const manifest = ds.selected ? ds.prepared.value?.find((m) => m.fingerprint === ds.selected) : undefined;
  if (!settings || !manifest) throw new Error('The bundle needs the run\'s prepared dataset: select it in the Data tab (the one the adapter was trained on), then export the bundle.');
  const file = ds.source?.kind === 'file' ? ds.source.file : null;
  const records = await data.bundleRecords(manifest.fingerprint, { file, token: useModelStore.getState().token || null, firstRows: settings.batchSize * settings.gradAccum });
  const done = run.metrics.filter((m) => !m.skipped && Number.isFinite(m.loss));
  return {
    settings,
    prepare: manifest.options,
    template: records.template,
    tokenizer: { info: records.tokenizer.info, padToken: records.padToken, files: records.tokenizer.files },
    data: records.data,
    datasetName: manifest.name,
    losses: done.map((m) => ({ step: m.step, loss: m.loss })),
    adapterStep: run.metrics.at(-1)?.step ?? 0,
  };
}
