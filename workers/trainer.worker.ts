// Trainer worker: owns the GPU device, the loaded model and its file cache (later the training
// loop). Thin: it wires src/engine and src/io to the comlink API declared in src/client/api.ts.
import { chatReply, createChatSession, destroyChatSession, type ChatSession } from '../src/engine/chat.ts';
import { describeGpu, getGpu, type Gpu } from '../src/engine/gpu.ts';
import { Kernels } from '../src/engine/kernels.ts';
import { loadModel, unloadModel, type LoadedModel } from '../src/engine/loader.ts';
import { destroyLora, type LoraSet } from '../src/engine/lora-weights.ts';
import { destroyModelWeights, modelFromLoaded } from '../src/engine/model.ts';
import { DEFAULT_TRAIN_SETTINGS, runTraining, type StepMetrics, type TrainResult, type TrainSettings } from '../src/engine/train/loop.ts';
import { latestCheckpointInfo, loadCheckpoint, type TrainCheckpoint } from '../src/engine/train/checkpoint.ts';
import { clearCheckpoints, MemoryCheckpointStore, type CheckpointStore } from '../src/io/checkpoint-store.ts';
import { openOpfsCheckpointStore } from '../src/io/checkpoint-store-opfs.ts';
import { portRowSource, type BatchPort } from '../src/engine/train/port-source.ts';
import { presetViews } from '../src/engine/presets.ts';
import { matmulSelfTest } from '../src/engine/selftest.ts';
import type { ModelCache } from '../src/io/cache.ts';
import { openBrowserCache } from '../src/io/cache-browser.ts';
import type { DeviceLost, SelfTestOptions, TrainBatchPorts, TrainerApi, TrainSummary } from '../src/client/api.ts';
import type { TemplateId } from '../src/data/templates.ts';
import { crash, exposeApi } from './expose.ts';
import { exportApi } from './trainer-export.ts';
import type { ModelSourceSpec } from '../src/io/model-source.ts';

let gpuPromise: Promise<Gpu> | null = null;
const lostListeners = new Set<(lost: DeviceLost) => void>();
let kernels: Kernels | null = null;
let model: LoadedModel | null = null;
let loading: AbortController | null = null;
let cachePromise: Promise<ModelCache> | null = null;

/** The trained adapter, once training holds one (issue 6); chat uses it when asked to. */
let adapter: LoraSet | null = null;
/** The run in progress: stop and pause requests. */
let training: { stop: AbortController; pause: AbortController } | null = null;
/** Where checkpoints go: OPFS, or memory where there is none (then they do not survive a reload). */
let checkpointsPromise: Promise<CheckpointStore> | null = null;
/** Device losses so far: a run that sees this change failed because its GPU went away. */
let deviceLosses = 0;
/** Chat state for the loaded model and a template: tokenizer, KV cache, generator. */
let chat: { model: LoadedModel; template: string; session: Promise<ChatSession> } | null = null;
let generating: { ctrl: AbortController; done: Promise<unknown> } | null = null;

const cache = (): Promise<ModelCache> => (cachePromise ??= openBrowserCache());
const checkpoints = (): Promise<CheckpointStore> =>
  (checkpointsPromise ??= openOpfsCheckpointStore().then((s) => s ?? new MemoryCheckpointStore()));

/** Trains on a prepared dataset (its train split; eval on its validation split, both read from the
 *  data worker through `batches`), fresh or from a checkpoint; the adapter it leaves becomes the
 *  one chat and export use. */
async function trainHere(
  dataset: string,
  settings: TrainSettings,
  onMetrics: (m: StepMetrics) => void,
  batches: TrainBatchPorts,
  resumeFrom?: TrainCheckpoint,
): Promise<TrainSummary> {
  const closePorts = (): void => {
    batches.train.close();
    batches.validation.close();
  };
  const m = model;
  if (!m || training) closePorts();
  if (!m) throw new Error(resumeFrom ? 'Load the model the run was training, then resume.' : 'Load a model before training.');
  if (training) throw new Error('A training run is already going; stop it first.');
  const ctrl = { stop: new AbortController(), pause: new AbortController() };
  training = ctrl;
  const losses = deviceLosses;
  try {
    const k = kernelsFor(await gpu());
    const source = await portRowSource(batches.train as unknown as BatchPort);
    const evalData = await portRowSource(batches.validation as unknown as BatchPort);
    const store = await checkpoints();
    // f32 activations (the backward does not run the f16 mode yet); the embedding and lm_head
    // stay in the loader's storage (f16 where the device has it): half their memory.
    const weights = await modelFromLoaded(k, m, { dtype: 'f32', embedDtype: m.embeddingDtype });
    try {
      const r: TrainResult = await runTraining(k, weights, source, settings, (x) => onMetrics(x), {
        signal: ctrl.stop.signal,
        pause: ctrl.pause.signal,
        store,
        resumeFrom,
        evalData,
        run: { modelId: m.summary.id, dataset },
      });
      if (model !== m) {
        destroyLora(r.lora); // the model changed under the run
      } else {
        if (adapter) destroyLora(adapter);
        adapter = r.lora;
      }
      const { steps, skipped, stopped, message, checkpoint, evalLoss, bestEvalLoss, bestEvalStep } = r;
      return { steps, skipped, stopped, message, checkpoint, evalLoss, bestEvalLoss, bestEvalStep };
    } finally {
      destroyModelWeights(weights);
    }
  } catch (e) {
    if (deviceLosses === losses) throw e;
    // The readbacks of a lost device fail with bare AbortErrors: say what happened and what is left.
    const info = await latestCheckpointInfo(await checkpoints()).catch(() => null);
    const kept = info ? ` The checkpoint of step ${info.step} of ${info.totalSteps} is kept: load the model again and resume.` : '';
    throw new Error(`The GPU device was lost during training.${kept}`);
  } finally {
    closePorts();
    if (training === ctrl) training = null;
  }
}

/** Where each loaded model came from: exports re-read its weights through the cache. */
const modelSources = new WeakMap<LoadedModel, ModelSourceSpec>();

function dropChat(): void {
  const old = chat;
  chat = null;
  old?.session.then(destroyChatSession, () => undefined);
}

function chatSession(k: Kernels, m: LoadedModel, template: TemplateId | undefined): Promise<ChatSession> {
  const key = template ?? '';
  if (chat?.model !== m || chat.template !== key) {
    dropChat();
    const session = createChatSession(k, m, { template });
    session.catch(() => {
      if (chat?.session === session) chat = null;
    });
    chat = { model: m, template: key, session };
  }
  return chat.session;
}

function kernelsFor(g: Gpu): Kernels {
  if (kernels?.gpu !== g) kernels = new Kernels(g);
  return kernels;
}

function dropModel(): void {
  generating?.ctrl.abort();
  training?.stop.abort();
  dropChat();
  if (adapter) destroyLora(adapter); // made for this model's shapes
  adapter = null;
  if (model) unloadModel(model);
  model = null;
}

/** The device, created on first use; a failed creation or a lost device is retried next time. */
function gpu(): Promise<Gpu> {
  if (!gpuPromise) {
    const p = getGpu().then((g) => {
      g.onLost((reason, message) => {
        deviceLosses++;
        if (gpuPromise === p) gpuPromise = null;
        model = null; // its buffers went with the device
        chat = null;
        adapter = null;
        training?.stop.abort(); // its last checkpoint stays in the store: resumeTraining() after a reload of the model
        for (const listener of lostListeners) {
          try {
            listener({ reason, message });
          } catch {
            // the page side of a callback may be gone; nothing to do
          }
        }
      });
      return g;
    });
    p.catch(() => {
      if (gpuPromise === p) gpuPromise = null;
    });
    gpuPromise = p;
  }
  return gpuPromise;
}

const api: TrainerApi = {
  async init() {
    return (await gpu()).info;
  },
  async describe() {
    return describeGpu((await gpu()).info);
  },
  async onDeviceLost(cb) {
    lostListeners.add(cb);
  },
  async selfTest(opts: SelfTestOptions = {}) {
    const { m = 100, n = 70, k = 37 } = opts;
    return matmulSelfTest(await gpu(), { m, n, k });
  },
  async loseDevice() {
    if (gpuPromise) (await gpuPromise).device.destroy();
  },
  crash: (mode) => crash('trainer', mode),
  async loadModel(source, onProgress) {
    loading?.abort(new DOMException('Another load started.', 'AbortError'));
    const ctrl = new AbortController();
    loading = ctrl;
    try {
      const g = await gpu();
      dropModel(); // free the GPU before filling it again
      const deps = { gpu: g, kernels: kernelsFor(g), cache: await cache() };
      const loaded = await loadModel(deps, source, { signal: ctrl.signal, onProgress });
      model = loaded;
      modelSources.set(loaded, source);
      return loaded.summary;
    } finally {
      if (loading === ctrl) loading = null;
    }
  },
  async cancelLoad() {
    loading?.abort(new DOMException('The load was cancelled.', 'AbortError'));
  },
  async unloadModel() {
    dropModel();
  },
  async currentModel() {
    return model?.summary ?? null;
  },
  async presets() {
    const info = await gpu().then((g) => g.info, () => null);
    return presetViews(info);
  },
  async cacheState() {
    const c = await cache();
    return { kind: c.kind, files: await c.list(), usage: await c.estimate().catch(() => null) };
  },
  async clearCache(repo) {
    return (await cache()).clear(repo);
  },
  async generate(messages, options, onToken) {
    const m = model;
    if (!m) throw new Error('Load a model before chatting.');
    const previous = generating;
    previous?.ctrl.abort(); // one answer at a time: a new question stops the old answer
    await previous?.done.catch(() => undefined);
    const session = await chatSession(kernelsFor(await gpu()), m, options.template);
    const ctrl = new AbortController();
    const done = chatReply(
      session,
      messages,
      options.adapter === false ? null : adapter,
      {
        maxNewTokens: options.maxNewTokens ?? 256,
        temperature: options.temperature ?? 0.7,
        topK: options.topK ?? 0,
        topP: options.topP ?? 0.9,
        repetitionPenalty: options.repetitionPenalty ?? 1.1,
        seed: options.seed ?? Math.floor(Math.random() * 2 ** 32),
        signal: ctrl.signal,
      },
      (t) => onToken(t),
    );
    generating = { ctrl, done };
    try {
      return await done;
    } finally {
      if (generating?.ctrl === ctrl) generating = null;
    }
  },
  async cancelGenerate() {
    generating?.ctrl.abort();
  },
  async train(dataset, settings, onMetrics, batches) {
    return trainHere(dataset, { ...DEFAULT_TRAIN_SETTINGS, ...settings }, onMetrics, batches);
  },
  async pauseTraining() {
    training?.pause.abort();
  },
  async resumeTraining(onMetrics, batches) {
    if (training) throw new Error('A training run is already going; stop it first.');
    const problems: string[] = [];
    const ckpt = await loadCheckpoint(await checkpoints(), problems);
    if (!ckpt) throw new Error(`There is no checkpoint to resume${problems.length ? ` (${problems.join('; ')})` : ''}.`);
    const { modelId, dataset } = ckpt.state.run;
    if (modelId && model && model.summary.id !== modelId) throw new Error(`The checkpoint was made with ${modelId}, not ${model.summary.id}: load ${modelId} first.`);
    if (!dataset) throw new Error('The checkpoint does not say which dataset it was trained on.');
    return trainHere(dataset, ckpt.state.settings, onMetrics, batches, ckpt);
  },
  async checkpointInfo() {
    return latestCheckpointInfo(await checkpoints());
  },
  async discardCheckpoint() {
    if (training) throw new Error('A training run is going; stop it before deleting its checkpoint.');
    await clearCheckpoints(await checkpoints());
  },
  async stopTraining() {
    training?.stop.abort();
  },
  async trainDefaults() {
    return { ...DEFAULT_TRAIN_SETTINGS, targets: [...DEFAULT_TRAIN_SETTINGS.targets] };
  },
  ...exportApi({
    model: () => model,
    source: (m) => modelSources.get(m) ?? null,
    adapter: () => adapter,
    training: () => training !== null,
    device: async () => (await gpu()).device,
    kernels: async () => kernelsFor(await gpu()),
    cache,
  }),
};

exposeApi(api);
