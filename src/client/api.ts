// The contract between the UI thread and the two workers. The workers implement these interfaces
// (workers/*.worker.ts check themselves against them with `import type`); the UI reaches them
// only through the proxies in this folder (trainer.ts, data.ts), never through a raw comlink
// Remote. Every method returns a Promise; a function argument is passed to the worker as a
// comlink proxy (the client wraps it), so the worker can call it back.
import type { GpuInfo, NoWebGPUReason } from '../engine/gpu.ts';
import type { MatmulCheck } from '../engine/selftest.ts';
import type { LoadProgress, ModelSourceSpec, ModelSummary } from '../engine/loader.ts';
import type { PresetView } from '../engine/presets.ts';
import type { CachedFileInfo, CacheKind, StorageUsage } from '../io/cache.ts';
import type {
  FormatMapping,
  HubDatasetSpec,
  InspectResult,
  PreparedManifest,
  PreparedShard,
  PrepareOptions,
  PrepareProgress,
  PreviewResult,
  SplitName,
  TokenizerSource,
} from '../data/index.ts';
import type { DatasetSplit } from '../io/hub.ts';
import type { ChatReply, ChatToken } from '../engine/chat.ts';
import type { TemplateId } from '../data/templates.ts';
import type { Message } from '../data/types.ts';
import type { StepMetrics, TrainSettings, TrainStopReason } from '../engine/train/loop.ts';
import type { CheckpointInfo } from '../engine/train/checkpoint.ts';
import type { ExportProgress, ExportResult, ExportSizes } from '../io/export-job.ts';
import type { LoadedExportRequest as ExportRequest } from '../engine/export-run.ts';
import type { HubCardFacts, HubUploadProgress, HubUploadResult } from '../io/hub-upload.ts';
import type { RunBundleInput } from '../io/run-bundle.ts';
import type { PreparedBundleData } from '../io/run-bundle-prepared.ts';
import type { TokenizerInfo } from '../data/tokenizer-info.ts';
import type { TokenizerFiles } from '../data/tokenizer-load.ts';

export type { GpuInfo, NoWebGPUReason, MatmulCheck };
export type { LoadProgress, ModelSourceSpec, ModelSummary, PresetView, CachedFileInfo, CacheKind, StorageUsage };
export type { ChatReply, ChatToken, Message as ChatMessage };
export type { StepMetrics, TrainSettings, TrainStopReason, CheckpointInfo };
export type { ExportProgress, ExportResult, ExportSizes, ExportRequest };

/** Where the trainer worker writes an export. The handles come from the page's pickers
 *  (showSaveFilePicker / showDirectoryPicker need a click there) and are cloned to the worker. */
export type ExportTarget =
  | { kind: 'file'; handle: FileSystemFileHandle }
  | { kind: 'folder'; handle: FileSystemDirectoryHandle }
  /** The browser's private storage (OPFS); the page then downloads the files from `browserFolder`. */
  | { kind: 'browser-storage' };

/** What the Export tab offers for the model held now. */
export interface ExportOptionsView {
  modelId: string | null;
  hasAdapter: boolean;
  /** What merged exports merge into: the checkpoint's own weights, or dequantized NF4 (bnb-4bit). */
  baseOrigin: '16-bit' | 'nf4' | null;
  /** Bytes of each export (planned, not run); null without a model or when config.json is unreadable. */
  sizes: ExportSizes | null;
  /** Why `sizes` is null. */
  problem: string | null;
  /** Workers that quantize (and merge) in parallel. */
  poolSize: number;
}

export interface ExportDone extends ExportResult {
  target: ExportTarget['kind'];
  /** browser-storage: the OPFS folder (webtune-exports/<id>) holding the files to download. */
  browserFolder: string | null;
}

/** The ports a run reads its packed rows from: the data worker serves each split on the other end
 *  (DataApi.serveBatches; openTrainBatches in src/client/batches.ts makes both), so batches go
 *  worker to worker, never through the UI thread. Transferred to the trainer worker. */
export interface TrainBatchPorts {
  train: MessagePort;
  validation: MessagePort;
}

/** How a training run ended (the trained adapter stays in the trainer worker for chat and export). */
export interface TrainSummary {
  /** Steps taken, skipped ones included. */
  steps: number;
  /** Steps skipped for a non-finite loss or gradient norm. */
  skipped: number;
  /** 'paused': pauseTraining() (a checkpoint was written; resumeTraining() continues);
   *  'early-stopped': earlyStoppingPatience evals without improvement (see message). */
  stopped: TrainStopReason;
  /** For people, when it did not end normally (e.g. "try a lower learning rate"). */
  message?: string;
  /** The last checkpoint the run wrote, if any. */
  checkpoint?: CheckpointInfo;
  /** The last eval loss on the validation split, and the best one with its step (when it has one). */
  evalLoss?: number;
  bestEvalLoss?: number;
  bestEvalStep?: number;
}

export type WorkerName = 'trainer' | 'data';

export type CrashMode = 'throw' | 'die';

/** Why the GPU device went away (GPUDeviceLostInfo, made cloneable). */
export interface DeviceLost {
  reason: string;
  message: string;
}

export interface SelfTestOptions {
  m?: number;
  n?: number;
  k?: number;
}

/** The model cache as the Model tab shows it. */
export interface CacheState {
  /** Where files are kept: OPFS, the Cache API, or memory (nothing persists). */
  kind: CacheKind;
  files: CachedFileInfo[];
  /** navigator.storage.estimate(); null where the browser does not say. */
  usage: StorageUsage | null;
}

/** Options of one chat answer; transformers' generate() names. */
export interface ChatRequestOptions {
  /** max_new_tokens (default 256). */
  maxNewTokens?: number;
  /** 0: greedy (default 0.7). */
  temperature?: number;
  /** 0: off (default 0). */
  topK?: number;
  /** 1: off (default 0.9). */
  topP?: number;
  /** 1: off (default 1.1). */
  repetitionPenalty?: number;
  /** Seed of the sampler's uniforms (default: a new one per call). */
  seed?: number;
  /** Apply the LoRA adapter held by the worker (default true; without one, the base model). */
  adapter?: boolean;
  /** Chat template (default: the model's own when its tokenizer has one, else ChatML). */
  template?: TemplateId;
}

export interface TrainerApi {
  /** Creates the GPU device once (later calls return the same facts); rejects with a
   *  RemoteError named 'NoWebGPUError' (with `reason`) when WebGPU is missing or refused. */
  init(): Promise<GpuInfo>;
  /** One line for people: "GPU: …, f16: yes, subgroups: yes, max buffer: 4.0 GiB" (describeGpu). */
  describe(): Promise<string>;
  /** `cb` is called once per device loss. */
  onDeviceLost(cb: (lost: DeviceLost) => void): Promise<void>;
  /** A small matmul on the GPU compared with a float64 CPU reference (default 100×70×37). */
  selfTest(opts?: SelfTestOptions): Promise<MatmulCheck>;
  /** Destroys the GPU device, so that the device-lost path can be tested. */
  loseDevice(): Promise<void>;
  /** For testing failure handling: 'throw' rejects this call; 'die' throws an uncaught error in
   *  the worker's global scope right after the call returns (the Worker's 'error' event fires). */
  crash(mode: CrashMode): Promise<void>;
  /** Loads a model onto the GPU, unloading the one held first. Rejects with an error named
   *  'AbortError' after cancelLoad(), 'HubError' (gated, not found, offline, rate limited),
   *  'UnsupportedModelError', 'StorageQuotaError', 'ModelLoadError'… each with a message for people. */
  loadModel(source: ModelSourceSpec, onProgress: (p: LoadProgress) => void): Promise<ModelSummary>;
  /** Stops a load in progress (downloaded bytes stay cached for the next attempt). */
  cancelLoad(): Promise<void>;
  /** Frees the model's GPU memory. */
  unloadModel(): Promise<void>;
  /** The model held now; null after a page reload (a new worker) or an unload. */
  currentModel(): Promise<ModelSummary | null>;
  /** Curated models with download size and the memory planner's estimate on this GPU. */
  presets(): Promise<PresetView[]>;
  cacheState(): Promise<CacheState>;
  /** Deletes cached files of one repo (all repos when omitted); resolves to the bytes freed. */
  clearCache(repo?: string): Promise<number>;
  /** Answers a conversation with the loaded model (KV cache, GPU sampling), streaming each token
   *  to `onToken`; stops at EOS / the template's end of turn, maxNewTokens, a full context, or
   *  cancelGenerate() (then it resolves with stop 'aborted' and the text so far). */
  generate(messages: Message[], options: ChatRequestOptions, onToken: (t: ChatToken) => void): Promise<ChatReply>;
  /** Stops the answer being generated, if any. */
  cancelGenerate(): Promise<void>;
  /** Trains a fresh LoRA adapter on the loaded model with the train split of a prepared dataset
   *  (its fingerprint, from the data worker's store; its rows arrive on `batches`), `settings` over DEFAULT_TRAIN_SETTINGS
   *  (checkpointEvery, evalEvery, earlyStoppingPatience, loraDropout among them); `onMetrics` once
   *  per step (evalLoss on eval steps, from the validation split when it has rows). Checkpoints go
   *  to OPFS (memory where the browser has none) and replace the previous run's. The adapter
   *  replaces the one held (chat uses it). Rejects when no model is loaded or a run is going. */
  train(dataset: string, settings: Partial<TrainSettings>, onMetrics: (m: StepMetrics) => void, batches: TrainBatchPorts): Promise<TrainSummary>;
  /** Stops the run after its current step (train() then resolves with stopped 'aborted'); a
   *  checkpoint of that step is written, so it can still be resumed. */
  stopTraining(): Promise<void>;
  /** Pauses the run after its current step: a checkpoint, then train()/resumeTraining() resolve
   *  with stopped 'paused'. */
  pauseTraining(): Promise<void>;
  /** Continues the run of the newest checkpoint (after a pause, a reload, a lost GPU) with its
   *  settings and dataset (`batches` serve checkpointInfo().dataset); the loaded model must be the
   *  checkpoint's (checkpointInfo().modelId).
   *  Resolves like train(). Rejects when there is no checkpoint, another model is loaded, or a
   *  run is going. */
  resumeTraining(onMetrics: (m: StepMetrics) => void, batches: TrainBatchPorts): Promise<TrainSummary>;
  /** The newest checkpoint (run id, step, total, settings, dataset fingerprint, model id…), read
   *  without its tensors; null when there is none. What the Train tab offers to resume. */
  checkpointInfo(): Promise<CheckpointInfo | null>;
  /** Deletes the stored checkpoints (not while a run is going). */
  discardCheckpoint(): Promise<void>;
  /** DEFAULT_TRAIN_SETTINGS (the seed recipe), for the Train tab's form. */
  trainDefaults(): Promise<TrainSettings>;
  /** What can be exported now, with the size of each export (no weights are read) when written
   *  with `template` (the training chat template; default: the tokenizer's own). */
  exportOptions(template?: TemplateId): Promise<ExportOptionsView>;
  /** Exports the adapter, a merged 16-bit model or a GGUF (src/engine/export-run.ts) to `target`;
   *  `onProgress` a few times a second. Rejects with an error named 'ExportError' whose `reason` is
   *  no-adapter | unsupported | bad-request | cancelled | disk-full | write-failed | failed and whose
   *  message says what to do; the partial files are removed first. */
  exportModel(request: ExportRequest, target: ExportTarget, onProgress: (p: ExportProgress) => void): Promise<ExportDone>;
  /** Stops the export in progress (exportModel then rejects with reason 'cancelled'). */
  cancelExport(): Promise<void>;
  /** The run bundle (src/io/run-bundle.ts) as one .zip: the page's facts of the run and its data,
   *  the worker's model and adapter. Fails as exportModel does; cancelExport stops it too. */
  exportRunBundle(run: RunBundleRequest, target: ExportTarget, onProgress: (p: ExportProgress) => void): Promise<BundleDone>;
  /** Uploads the trained adapter (PEFT's files and a card) to a Hub model repo (src/io/hub-upload.ts);
   *  rejects with an error named 'HubUploadError' whose message is a sentence. */
  uploadAdapter(request: AdapterUploadRequest, onProgress: (p: HubUploadProgress) => void): Promise<HubUploadResult>;
}

/** What the page knows of a run for its bundle; the worker adds the model and the adapter. */
export type RunBundleRequest = Omit<RunBundleInput, 'modelId' | 'modelType' | 'baseQuantization' | 'adapter' | 'dtype'> & { adapterStep: number };

export interface BundleDone extends Omit<ExportDone, 'kind'> {
  kind: 'bundle';
}

export interface AdapterUploadRequest {
  repo: string;
  token: string;
  private: boolean;
  hubUrl: string;
  /** The card's facts of the run (base model and LoRA settings come from the worker). */
  card: Omit<HubCardFacts, 'baseModel' | 'settings'>;
}

export interface StoreProbe {
  wrote: string;
  readBack: string;
  ok: boolean;
}

export interface DemoModelEntry {
  id: string;
  name: string;
  /** Relative to the app's base URL, e.g. "demo/model". */
  path: string;
  files: { path: string; size: number }[];
  params: number;
}

export interface DemoDatasetEntry {
  id: string;
  name: string;
  /** Relative to the app's base URL, e.g. "demo/data/sort-words.jsonl". */
  path: string;
  format: string;
  rows: number;
  bytes: number;
}

/** public/demo/manifest.json */
export interface DemoManifest {
  model: DemoModelEntry;
  datasets: DemoDatasetEntry[];
}

/** Where Hub requests go: the app's settings. */
export interface HubEndpoints {
  endpoint: string;
  datasetsServer: string;
  /** A Hugging Face token for gated or private datasets (never stored by the data worker). */
  token?: string;
}

/** Where a dataset's records come from. Plain data: a File crosses to the worker as a clone. */
export type DatasetSource =
  | { kind: 'file'; file: File }
  /** A demo dataset, fetched by the worker from `url` (absolute). */
  | { kind: 'demo'; id: string; name: string; url: string }
  | ({ kind: 'hub'; hub: HubEndpoints } & HubDatasetSpec);

/** Preparation options plus the tokenizer to use. */
export interface PrepareRequest extends PrepareOptions {
  tokenizer: TokenizerSource;
  /** Tokenize workers the data worker starts (0: tokenize in the data worker itself). Default:
   *  one per core, up to four, for sources of 8 MiB or 20,000 records and more; none below. The
   *  stored rows are the same either way. */
  tokenizeWorkers?: number;
}

/** Stored with each manifest by the data worker, so that a partial preparation can go on. */
export interface PrepareOrigin {
  /** A file source keeps only what identifies the file. */
  source: Exclude<DatasetSource, { kind: 'file' }> | { kind: 'file'; name: string; size: number; lastModified: number };
  request: PrepareRequest;
}

export interface BundleRecordsView extends PreparedBundleData {
  tokenizer: { info: TokenizerInfo; files: TokenizerFiles };
}

export interface TokenizerFactsView {
  id: string;
  bosToken: string | null;
  eosToken: string | null;
  hasChatTemplate: boolean;
}

export interface DataApi {
  /** Writes a random value to IndexedDB from the worker, reads it back, deletes it. */
  storeProbe(): Promise<StoreProbe>;
  /** Fetches `${baseUrl}demo/manifest.json`; `baseUrl` is the app's absolute base URL. */
  demoManifest(baseUrl: string): Promise<DemoManifest>;
  crash(mode: CrashMode): Promise<void>;

  /** Detected format, columns and the first records under `mapping` (or the detected one). */
  inspect(source: DatasetSource, mapping?: FormatMapping | null): Promise<InspectResult>;
  /** The first `n` examples rendered, tokenized and masked as preparing would. */
  preview(source: DatasetSource, request: PrepareRequest, n?: number): Promise<PreviewResult>;
  /** Prepares (or finds, or resumes) a dataset in IndexedDB; `onProgress` a few times a second.
   *  Rejects with name 'AbortError' after cancel(jobId), keeping the shards stored so far. */
  prepare(jobId: string, source: DatasetSource, request: PrepareRequest, onProgress: (p: PrepareProgress) => void): Promise<PreparedManifest>;
  /** Continues a partial preparation of a demo or Hub dataset from its stored cursor (a file
   *  must be chosen again: its bytes are not kept). */
  resumePrepared(jobId: string, fingerprint: string, onProgress: (p: PrepareProgress) => void): Promise<PreparedManifest>;
  /** false when no such job runs. */
  cancel(jobId: string): Promise<boolean>;
  /** Prepared datasets in IndexedDB, newest first (partial ones too). */
  listPrepared(): Promise<PreparedManifest[]>;
  openPrepared(fingerprint: string): Promise<PreparedManifest | null>;
  readShard(fingerprint: string, index: number, split?: SplitName): Promise<PreparedShard>;
  /** Serves the packed rows of a prepared dataset's split on `port` until it closes, for a
   *  RowSource in another worker (portRowSource in src/engine/train/port-source.ts); the client
   *  (data.ts) transfers the port. Resolves to the rows served; rejects (and so does every read
   *  on the port) when there is no such dataset. */
  serveBatches(fingerprint: string, split: SplitName, port: MessagePort): Promise<{ rows: number; seqLength: number }>;
  deletePrepared(fingerprint: string): Promise<void>;
  /** The dataset viewer's configs and splits of a Hub dataset. */
  hubSplits(hub: HubEndpoints, dataset: string): Promise<DatasetSplit[]>;
  tokenizerFacts(source: TokenizerSource): Promise<TokenizerFactsView>;
  /** The records of a prepared dataset's rows for its run bundle: its source read again (a file
   *  source needs `file`, the same one chosen again) and matched to the stored rows. */
  bundleRecords(fingerprint: string, options: { file?: File | null; token?: string | null; firstRows?: number }): Promise<BundleRecordsView>;
}

/**
 * How a worker sends an error back. comlink's own error transfer keeps only name, message and
 * stack; the workers throw this plain object instead, so fields such as NoWebGPUError's `reason`
 * survive, and the client turns it back into a RemoteError.
 */
export interface WireError {
  webtuneError: true;
  name: string;
  message: string;
  reason?: string;
  stack?: string;
}

export function isWireError(value: unknown): value is WireError {
  return typeof value === 'object' && value !== null && (value as WireError).webtuneError === true;
}
