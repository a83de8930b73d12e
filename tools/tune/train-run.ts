// A training run, start to end: checkpoints in order (a fresh run refuses to mix with an old one),
// the dataset prepared (or found prepared) with the model's tokenizer, the model loaded onto the
// GPU, the training loop with a JSON line per step, the exports, and the summary.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Kernels } from '../../src/engine/kernels.ts';
import { loadModel, unloadModel } from '../../src/engine/loader.ts';
import { gpuMemory } from '../../src/engine/gpu-memory.ts';
import { destroyLora } from '../../src/engine/lora-weights.ts';
import { destroyModelWeights, modelFromLoaded } from '../../src/engine/model.ts';
import { latestCheckpointInfo, type TrainCheckpoint } from '../../src/engine/train/checkpoint.ts';
import { DEFAULT_TRAIN_SETTINGS, runTraining, type StepMetrics, type TrainResult, type TrainSettings } from '../../src/engine/train/loop.ts';
import { DirectoryCheckpointStore } from '../../src/io/checkpoint-store-node.ts';
import type { ModelSourceSpec } from '../../src/io/model-source.ts';
import { cardFacts } from './card.ts';
import { openDataSource } from './data-choice.ts';
import { prepareOptions } from './data-flags.ts';
import { writeBundle } from './bundle.ts';
import { runExports, type ExportsDone, type WrittenFile } from './exports.ts';
import { hubSummary, pushExport } from './push.ts';
import { UsageError } from './flag-values.ts';
import { nodeGpu } from './gpu.ts';
import { trainSettingsFrom } from './train-flags.ts';
import { describePrepared, modelTokenizer, prepareData, type PreparedData } from './prepare.ts';
import { checkResumeSettings, checkSameData, checkSameModel, findCheckpoint, planResume } from './resume.ts';
import { writeRunRecord } from './run-record.ts';
import type { RunSetup } from './run.ts';

export interface RunOutcome {
  summary: Record<string, unknown>;
  /** 0 done; 1 the run failed (diverged); 130 stopped by a signal. */
  exitCode: number;
}

const CHECKPOINTS = 'checkpoints';

/** The first and last finite losses of the steps this invocation ran. */
function lossEnds(metrics: readonly StepMetrics[]): { first: number | null; last: number | null } {
  const finite = metrics.filter((m) => !m.skipped && Number.isFinite(m.loss));
  return { first: finite[0]?.loss ?? null, last: finite.at(-1)?.loss ?? null };
}

async function checkpointsFor(setup: RunSetup): Promise<{ store: DirectoryCheckpointStore; where: string; resumeFrom: TrainCheckpoint | null }> {
  const where = join(setup.outDir, CHECKPOINTS);
  const store = new DirectoryCheckpointStore(where);
  if (setup.args.resume) {
    const ckpt = await findCheckpoint(store, where);
    checkSameModel(ckpt, setup.files.id);
    checkResumeSettings(ckpt, setup.args.train);
    return { store, where, resumeFrom: ckpt };
  }
  const old = await latestCheckpointInfo(store);
  if (old) {
    throw new UsageError(`${where} already holds a checkpoint (step ${old.step} of ${old.totalSteps}): --resume continues it; to start over, delete that folder or choose another --out.`);
  }
  return { store, where, resumeFrom: null };
}

async function prepare(setup: RunSetup): Promise<PreparedData> {
  const { args, files, out, signal } = setup;
  const tokenizer = await modelTokenizer(files, signal);
  const source = await openDataSource(args.data!, { endpoint: setup.endpoint, datasetsServer: args.datasetsServer, token: setup.token, split: args.split, rows: args.rows, config: args.dataConfig }, signal);
  const data = await prepareData(source, tokenizer, prepareOptions(args.prepare), setup.cacheDir, out, signal);
  out.say(describePrepared(data));
  return data;
}

export async function trainRun(setup: RunSetup): Promise<RunOutcome> {
  const started = performance.now();
  const { args, out, files, model } = setup;
  mkdirSync(setup.outDir, { recursive: true });
  // Settings first: a bad combination fails before any data is read.
  let settings: TrainSettings = trainSettingsFrom(DEFAULT_TRAIN_SETTINGS, args.train);
  const ckpts = await checkpointsFor(setup);
  const data = await prepare(setup);
  const fingerprint = data.manifest.fingerprint;
  let resumeFrom: TrainCheckpoint | undefined;
  if (ckpts.resumeFrom) {
    checkSameData(ckpts.resumeFrom, fingerprint);
    const plan = planResume(ckpts.resumeFrom, args.train, data.train.rows);
    settings = plan.settings;
    resumeFrom = plan.checkpoint;
    out.say(plan.note ?? `Continuing from the checkpoint of step ${resumeFrom.state.step} of ${resumeFrom.state.totalSteps}.`);
  } else {
    writeRunRecord(setup.outDir, args);
  }

  // Stop the run when the device goes: the loop's next readback would fail with a bare AbortError.
  const lost = new AbortController();
  const stop = AbortSignal.any([setup.signal, lost.signal]);
  const gpu = await nodeGpu((message) => {
    out.say(message);
    lost.abort(new Error(message));
  });
  const kernels = new Kernels(gpu);
  // The very commit whose files were read (tokenizer, exports) is the one loaded.
  const spec: ModelSourceSpec = model.spec.kind === 'hub' ? { ...model.spec, revision: files.revision ?? model.spec.revision } : model.spec;
  const loaded = await loadModel({ gpu, kernels, cache: model.cache, fetch: model.fetch }, spec, { signal: stop, onProgress: (p) => out.progress('load', { ...p }) });
  out.say(`Loaded ${loaded.summary.description} (${loaded.summary.quantization}) in ${loaded.summary.loadSeconds.toFixed(1)} s.`);
  for (const w of loaded.summary.warnings) out.say(w);

  const metrics: StepMetrics[] = [];
  let result: TrainResult | null = null;
  let written: WrittenFile[] = [];
  let bundle: WrittenFile | null = null;
  let hub: Record<string, unknown> | null = null;
  const trainStart = performance.now();
  try {
    // f32 activations: the backward pass does not run the f16 mode yet (as the trainer worker).
    const weights = await modelFromLoaded(kernels, loaded, { dtype: 'f32' });
    try {
      result = await runTraining(
        kernels,
        weights,
        data.train,
        settings,
        (m) => {
          metrics.push(m);
          out.step(m);
        },
        { signal: stop, store: ckpts.store, resumeFrom, evalData: data.validation, run: { modelId: loaded.summary.id, dataset: fingerprint } },
      );
    } finally {
      destroyModelWeights(weights);
    }
    const trainSeconds = (performance.now() - trainStart) / 1000;
    if (result.message) out.say(result.message);
    const wantsFiles = args.exports.length > 0 || args.bundle !== null;
    if (wantsFiles && result.stopped === 'aborted') out.say('Stopped before the end: nothing exported (--resume finishes the run).');
    else if (wantsFiles) {
      const template = data.manifest.template.id;
      const card = cardFacts(settings, metrics, data.manifest, result.evalLoss);
      const lora = { set: result.lora, device: gpu.device };
      let done: ExportsDone = { files: [], results: [] };
      if (args.exports.length > 0) {
        done = await runExports(
          args.exports,
          { loaded, files, lora, template, templateSource: template === 'custom' ? args.prepare.templateSource : undefined, card, outDir: setup.outDir, signal: setup.signal, quantizer: args.quantizer, kernels: async () => kernels },
          out,
        );
        written = done.files;
      }
      if (args.bundle) {
        const losses = metrics.filter((m) => !m.skipped && Number.isFinite(m.loss)).map((m) => ({ step: m.step, loss: m.loss }));
        bundle = await writeBundle(setup, { layout: args.bundle, data, settings, loaded, lora, step: result.steps, losses });
      }
      if (args.pushToHub !== undefined && done.results[0]) {
        const settingsCard = { r: settings.loraR, loraAlpha: settings.loraAlpha, useRslora: settings.rslora, targetModules: settings.targets, loraDropout: settings.loraDropout };
        const pushed = await pushExport(done.results[0].spec, done.results[0].result, {
          repo: args.pushToHub,
          private: args.private === true,
          token: setup.token!,
          endpoint: setup.endpoint,
          card: { baseModel: loaded.summary.id, settings: settingsCard, template, ...card },
          signal: setup.signal,
        }, out);
        hub = hubSummary(pushed);
      }
    }
    const r = result;
    return {
      exitCode: r.stopped === 'diverged' ? 1 : r.stopped === 'aborted' ? 130 : 0,
      summary: {
        stopped: r.stopped,
        ...(r.message ? { message: r.message } : {}),
        model: loaded.summary.id,
        dataset: { name: data.manifest.name, fingerprint, cached: data.cached, trainRows: data.train.rows, validationRows: data.validation.rows, seqLength: data.train.seqLength },
        steps: r.steps,
        stepsThisRun: metrics.length,
        resumedFromStep: resumeFrom ? resumeFrom.state.step : null,
        skipped: r.skipped,
        losses: lossEnds(metrics),
        evalLoss: r.evalLoss ?? null,
        bestEvalLoss: r.bestEvalLoss ?? null,
        bestEvalStep: r.bestEvalStep ?? null,
        tokensPerSecond: metrics.at(-1)?.tokensPerSecond ?? null,
        trainSeconds,
        peakGpuMemoryBytes: gpuMemory(gpu.device).peak,
        checkpoint: r.checkpoint ? { step: r.checkpoint.step, dir: ckpts.where } : null,
        files: written,
        ...(bundle ? { bundle: { layout: args.bundle, ...bundle } } : {}),
        ...(hub ? { hub } : {}),
        seconds: (performance.now() - started) / 1000,
      },
    };
  } finally {
    if (result) destroyLora(result.lora);
    unloadModel(loaded);
  }
}
