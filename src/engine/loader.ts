// Loading a model onto the GPU (DESIGN.md data flow 2): config.json -> architecture check (refused
// before any weight is requested) -> memory plan -> tokenizer files -> weights shard by shard
// through the cache, tensor by tensor as the bytes arrive: frozen linears quantized to NF4 on the
// GPU (or a bnb-4bit checkpoint's NF4 uploaded as is), embeddings in f16/f32, norms and biases f32.
// The trainer worker holds the result; the UI gets its summary.
import type { ModelCache } from '../io/cache.ts';
import type { HubClientOptions } from '../io/hub.ts';
import { BNB_4BIT_SUFFIXES, isBnb4bit } from '../io/nf4.ts';
import { openModelFiles, type ModelFiles, type ModelSourceSpec } from '../io/model-source.ts';
import {
  openSafetensors,
  parseShardIndex,
  SAFETENSORS_INDEX_FILE,
  SAFETENSORS_SINGLE_FILE,
  type SafetensorsFile,
  type ShardIndex,
  type TensorInfo,
} from '../io/safetensors.ts';
import { formatBytes } from '../util/format.ts';
import { allTensorSpecs, describeArch, parseModelConfig, type ModelArch, type ModelFamily, type TensorSpec } from './arch.ts';
import type { Gpu } from './gpu.ts';
import { gpuMemory, type GpuMemorySnapshot } from './gpu-memory.ts';
import type { Kernels } from './kernels.ts';
import { LoadTracker, type LoadProgress } from './load-progress.ts';
import { destroyNf4, type Nf4GpuWeight } from './nf4.ts';
import { planMemory, type PlanSettings } from './planner.ts';
import { defaultPlanSettings } from './presets.ts';
import { BYTES, type DType, type Tensor } from './tensor.ts';
import { WeightUploader } from './weights.ts';

export type { LoadProgress, LoadPhase } from './load-progress.ts';
export type { ModelSourceSpec } from '../io/model-source.ts';

/** Tokenizer and generation files kept with the model, when the repo has them. */
export const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json'] as const;

/** The model cannot be loaded as it is (missing tensors, wrong shapes, too large for a buffer). */
export class ModelLoadError extends Error {
  override readonly name = 'ModelLoadError';
}

export interface ModelSummary {
  id: string;
  name: string;
  source: 'demo' | 'hub';
  /** Commit sha; null for the demo. */
  revision: string | null;
  family: ModelFamily;
  modelType: string;
  /** describeArch: "llama, 32 layers, hidden 4096, …". */
  description: string;
  params: number;
  /** 'nf4': quantized here from 16/32-bit; 'bnb-4bit': pre-quantized NF4 uploaded as stored. */
  quantization: 'nf4' | 'bnb-4bit';
  doubleQuant: boolean;
  /** GPU bytes of the NF4 linears (packed codes + f32 absmax). */
  nf4Bytes: number;
  /** GPU bytes of everything else: embeddings/lm_head in `embeddingDtype`, norms and biases f32. */
  denseBytes: number;
  embeddingDtype: DType;
  /** Why embeddings are in that dtype, for people. */
  embeddingNote: string;
  gpuBytes: number;
  gpuBuffers: number;
  /**
   * The device's tracked GPU buffers (gpu-memory.ts) when the load finished: everything the engine
   * holds, this model's weights and anything else; `peak` is the device's high-water mark and
   * `loadPeak` the most that was live during this load (weights plus the upload scratch).
   */
  gpuMemory: GpuMemorySnapshot & { loadPeak: number };
  /** The memory planner's lines for the default run, and its warnings. */
  planLines: string[];
  planWarnings: string[];
  loadSeconds: number;
  downloadedBytes: number;
  cachedBytes: number;
  tokenizerFiles: string[];
  /** Checkpoint tensors the engine does not use (e.g. lm_head of a tied model). */
  ignoredTensors: string[];
  warnings: string[];
  /** The Hub was unreachable; the files came from the cache. */
  offline: boolean;
}

export interface LoadedModel {
  arch: ModelArch;
  /** Frozen linears, by HF weight name (model.layers.0.self_attn.q_proj.weight). */
  nf4: Map<string, Nf4GpuWeight>;
  /** Embeddings and lm_head (embeddingDtype), norms, biases, q_norm/k_norm (f32), by HF name. */
  dense: Map<string, Tensor>;
  embeddingDtype: DType;
  /** tokenizer.json, tokenizer_config.json, generation_config.json (those present), as text. */
  tokenizerFiles: Map<string, string>;
  summary: ModelSummary;
}

export interface LoadDeps {
  gpu: Gpu;
  kernels: Kernels;
  /** Persistent cache for Hub files. */
  cache: ModelCache;
  fetch?: (input: string, init?: RequestInit) => Promise<Response>;
  hub?: Omit<HubClientOptions, 'endpoint' | 'token'>;
}

export interface LoadOptions {
  signal?: AbortSignal;
  onProgress?: (p: LoadProgress) => void;
  /** Double-quantize the absmax of linears quantized here (default true, as QLoRA). */
  doubleQuant?: boolean;
  /** Embedding storage; default f16 where the GPU has shader-f16, else f32. */
  embeddingDtype?: DType;
  /** Settings for the memory plan (default: the studio's default run). */
  planSettings?: PlanSettings;
}

/** One unit of upload: a linear (plain or bnb parts) or a dense tensor. */
interface Job {
  spec: TensorSpec;
  kind: 'linear' | 'bnb' | 'dense';
  /** Checkpoint tensors it reads. */
  parts: string[];
}

const decoder = new TextDecoder();

function abortError(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('The load was cancelled.', 'AbortError');
}

export async function loadModel(deps: LoadDeps, source: ModelSourceSpec, opts: LoadOptions = {}): Promise<LoadedModel> {
  const started = performance.now();
  const ctrl = new AbortController(); // also stops downloads when processing fails
  const outer = opts.signal;
  if (outer?.aborted) throw abortError(outer);
  const onAbort = (): void => ctrl.abort(outer!.reason);
  outer?.addEventListener('abort', onAbort, { once: true });
  const signal = ctrl.signal;
  const check = (): void => {
    if (signal.aborted) throw abortError(signal);
  };
  const tracker = new LoadTracker(opts.onProgress);
  const memory = gpuMemory(deps.gpu.device);
  const memoryWindow = memory.openWindow();
  try {
    tracker.step('config', `Reading ${source.id}…`);
    const files = await openModelFiles(source, deps);
    check();
    if (!files.has('config.json')) throw new ModelLoadError(`${files.id} has no config.json: it is not a transformers model repo.`);
    const arch = parseModelConfig(parseJson(await files.bytes('config.json', signal), `config.json of ${files.id}`));
    const { info } = deps.gpu;
    const embeddingDtype = opts.embeddingDtype ?? (info.f16 ? 'f16' : 'f32');
    if (embeddingDtype === 'f16' && !info.f16) throw new ModelLoadError('f16 embeddings need shader-f16, which this GPU lacks');
    const plan = planMemory(arch, opts.planSettings ?? defaultPlanSettings(arch, info), { limits: info.limits });
    checkBufferSizes(arch, embeddingDtype, info.limits.maxBufferSize);

    const weightFiles = await weightLayout(files, signal);
    check();

    tracker.step('tokenizer', 'Reading the tokenizer…');
    const tokenizerFiles = new Map<string, string>();
    for (const path of TOKENIZER_FILES) {
      if (files.has(path)) tokenizerFiles.set(path, decoder.decode(await files.bytes(path, signal)));
    }
    check();

    const warnings: string[] = [];
    if (!tokenizerFiles.has('tokenizer.json')) warnings.push(`${files.id} has no tokenizer.json: datasets and chat need a tokenizer.`);
    if (files.offline) warnings.push('The Hub could not be reached: the files came from the browser cache.');

    const weights = await loadWeights(deps, files, arch, weightFiles, embeddingDtype, opts.doubleQuant ?? true, tracker, ctrl);
    if (signal.aborted) {
      // Cancelled while the last tensors went up: what they filled goes back too.
      freeWeights(weights);
      throw abortError(signal);
    }
    warnings.push(...weights.warnings);
    const quantization = weights.bnb ? 'bnb-4bit' : 'nf4';
    const doubleQuant = weights.bnb ? arch.quantization.method === 'bnb-nf4' && arch.quantization.doubleQuant : (opts.doubleQuant ?? true);
    const summary: ModelSummary = {
      id: files.id,
      name: files.name,
      source: source.kind,
      revision: files.revision,
      family: arch.family,
      modelType: arch.modelType,
      description: describeArch(arch),
      params: arch.params.total,
      quantization,
      doubleQuant,
      nf4Bytes: weights.nf4Bytes,
      denseBytes: weights.denseBytes,
      embeddingDtype,
      embeddingNote:
        embeddingDtype === 'f16'
          ? 'Embeddings in f16: this GPU has shader-f16.'
          : info.f16
            ? 'Embeddings in f32 (asked for).'
            : 'Embeddings in f32: this GPU has no shader-f16.',
      gpuBytes: weights.uploader.bytes,
      gpuBuffers: weights.uploader.buffers,
      gpuMemory: { ...memory.snapshot(), loadPeak: memoryWindow.peak },
      planLines: plan.lines,
      planWarnings: plan.warnings,
      loadSeconds: (performance.now() - started) / 1000,
      downloadedBytes: tracker.bytesDone,
      cachedBytes: tracker.cachedBytes,
      tokenizerFiles: [...tokenizerFiles.keys()],
      ignoredTensors: weights.ignored,
      warnings,
      offline: files.offline,
    };
    tracker.step('done', `Loaded ${files.name} in ${summary.loadSeconds.toFixed(1)} s`);
    return { arch, nf4: weights.nf4, dense: weights.dense, embeddingDtype, tokenizerFiles, summary };
  } finally {
    memoryWindow.close();
    tracker.stop();
    outer?.removeEventListener('abort', onAbort);
    ctrl.abort(); // nothing of this load keeps running
  }
}

function parseJson(bytes: Uint8Array, what: string): unknown {
  try {
    return JSON.parse(decoder.decode(bytes));
  } catch (e) {
    throw new ModelLoadError(`${what} is not valid JSON: ${(e as Error).message}`);
  }
}

/** Frees every GPU buffer of a loaded model. */
export function unloadModel(m: LoadedModel): void {
  freeWeights(m);
}

function freeWeights(m: Pick<LoadedModel, 'nf4' | 'dense'>): void {
  for (const w of m.nf4.values()) destroyNf4(w);
  for (const t of m.dense.values()) t.buffer.destroy();
  m.nf4.clear();
  m.dense.clear();
}

/** Refuses, before any download, a model one of whose buffers this GPU cannot create at all. */
function checkBufferSizes(arch: ModelArch, emb: DType, maxBufferSize: number): void {
  const big = arch.linears.reduce((m, l) => (l.out * l.in > m.out * m.in ? l : m));
  const needs: [string, number][] = [
    [`embed_tokens [${arch.vocabSize}, ${arch.hidden}] ${emb}`, arch.vocabSize * arch.hidden * BYTES[emb]],
    [`${big.name} NF4 codes [${big.out}, ${big.in}]`, Math.ceil((big.out * big.in) / 8) * 4],
  ];
  for (const [what, bytes] of needs) {
    if (bytes > maxBufferSize) {
      throw new ModelLoadError(
        `${what} needs a ${formatBytes(bytes)} buffer, but this GPU's largest buffer (maxBufferSize) is ${formatBytes(maxBufferSize)}: it cannot hold this model. Pick a smaller model.`,
      );
    }
  }
}

/** The weight files in download order, with the index when sharded. */
async function weightLayout(files: ModelFiles, signal: AbortSignal): Promise<{ paths: string[]; index: ShardIndex | null }> {
  if (files.has(SAFETENSORS_INDEX_FILE)) {
    const index = parseShardIndex(await files.bytes(SAFETENSORS_INDEX_FILE, signal));
    for (const f of index.files) if (!files.has(f)) throw new ModelLoadError(`${SAFETENSORS_INDEX_FILE} of ${files.id} lists ${f}, which the repo does not have.`);
    return { paths: [...index.files], index };
  }
  if (files.has(SAFETENSORS_SINGLE_FILE)) return { paths: [SAFETENSORS_SINGLE_FILE], index: null };
  const bin = [...files.files.keys()].some((p) => p.endsWith('.bin') || p.endsWith('.pth'));
  throw new ModelLoadError(
    bin
      ? `${files.id} has only PyTorch .bin weights; the studio reads safetensors. Pick a repo with model.safetensors (most have one).`
      : `${files.id} has no model.safetensors or ${SAFETENSORS_INDEX_FILE}.`,
  );
}

/** Which checkpoint tensors make each model tensor; throws naming what is missing. */
function planJobs(arch: ModelArch, names: ReadonlySet<string>, id: string): { jobs: Job[]; ignored: string[] } {
  const jobs: Job[] = [];
  const missing: string[] = [];
  for (const spec of allTensorSpecs(arch)) {
    if (spec.kind === 'linear') {
      const prefix = spec.name.slice(0, -'weight'.length);
      if (isBnb4bit(names, prefix)) {
        jobs.push({ spec, kind: 'bnb', parts: BNB_4BIT_SUFFIXES.map((s) => prefix + s).filter((n) => names.has(n)) });
        continue;
      }
    }
    if (!names.has(spec.name)) missing.push(spec.name);
    else jobs.push({ spec, kind: spec.kind === 'linear' ? 'linear' : 'dense', parts: [spec.name] });
  }
  if (missing.length) {
    const list = missing.slice(0, 4).join(', ') + (missing.length > 4 ? ` and ${missing.length - 4} more` : '');
    throw new ModelLoadError(`The weights of ${id} do not match its config.json: missing ${list}.`);
  }
  const used = new Set(jobs.flatMap((j) => j.parts));
  return { jobs, ignored: [...names].filter((n) => !used.has(n)).sort() };
}

interface WeightsResult {
  nf4: Map<string, Nf4GpuWeight>;
  dense: Map<string, Tensor>;
  nf4Bytes: number;
  denseBytes: number;
  bnb: boolean;
  ignored: string[];
  warnings: string[];
  uploader: WeightUploader;
}

async function loadWeights(
  deps: LoadDeps,
  files: ModelFiles,
  arch: ModelArch,
  layout: { paths: string[]; index: ShardIndex | null },
  embeddingDtype: DType,
  doubleQuant: boolean,
  tracker: LoadTracker,
  ctrl: AbortController,
): Promise<WeightsResult> {
  const { paths, index } = layout;
  const signal = ctrl.signal;
  // Totals for progress: what the cache already holds complete is not downloaded.
  let toDownload = 0;
  for (const p of paths) {
    const size = files.files.get(p) ?? 0;
    const stored = await files.storedBytes(p);
    toDownload += size - stored;
    tracker.cachedBytes += stored;
    tracker.weightBytes += size;
  }
  tracker.bytesTotal = toDownload;
  await files.checkSpace(toDownload);

  const largest = Math.max(...arch.linears.map((l) => l.out * l.in));
  const uploader = new WeightUploader(deps.kernels, largest);
  const nf4 = new Map<string, Nf4GpuWeight>();
  const dense = new Map<string, Tensor>();
  const opened = new Map<string, SafetensorsFile>();
  const fetches = startDownloads(files, paths, {
    signal,
    neededBytes: toDownload,
    onBytes: (n) => {
      tracker.bytesDone += n;
      tracker.weights('Quantizing');
    },
  });
  let plan = index ? planJobs(arch, new Set(index.weightMap.keys()), files.id) : null;
  let bnb = false;
  try {
    for (let i = 0; i < paths.length; i++) {
      const path = paths[i];
      tracker.file = path;
      const fetched = await fetches[i];
      if (fetched.cachedBytes > 0 && fetched.cachedBytes < fetched.source.size) {
        tracker.bytesTotal -= fetched.cachedBytes; // a resumed partial file
        tracker.cachedBytes += fetched.cachedBytes;
      }
      const st = await openSafetensors(fetched.source);
      opened.set(path, st);
      if (index) checkShard(st, path, index);
      else plan = planJobs(arch, new Set(st.tensors.map((t) => t.name)), files.id);
      const shardOf = (name: string): number => (index ? paths.indexOf(index.weightMap.get(name)!) : 0);
      const mine = plan!.jobs.filter((j) => Math.max(...j.parts.map(shardOf)) === i);
      const endIn = (j: Job): number => Math.max(...j.parts.filter((p) => shardOf(p) === i).map((p) => st.get(p).fileOffset + st.get(p).byteLength));
      mine.sort((a, b) => endIn(a) - endIn(b)); // file order: each waits only for its own bytes
      tracker.tensorsTotal = plan!.jobs.length;
      const lookup = (name: string): SafetensorsFile => opened.get(paths[shardOf(name)])!;
      for (const [k, job] of mine.entries()) {
        if (signal.aborted) throw abortError(signal);
        const name = job.spec.name;
        // The next tensor's first chunks are read while this one's last are uploaded.
        const next = mine[k + 1];
        if (next && next.kind !== 'bnb') uploader.readAhead(lookup(next.spec.name), lookup(next.spec.name).get(next.spec.name));
        tracker.tensor = name;
        tracker.weights(job.kind === 'linear' ? 'Quantizing to NF4' : 'Uploading');
        if (job.kind === 'bnb') {
          bnb = true;
          nf4.set(name, await uploader.uploadBnbLinear(lookup, name.slice(0, -'weight'.length), job.parts, job.spec.shape));
        } else {
          const t = checkShape(lookup(name), name, job.spec.shape);
          if (job.kind === 'linear') nf4.set(name, await uploader.quantizeLinear(lookup(name), t, job.spec.shape, doubleQuant));
          else {
            const dtype = job.spec.kind === 'embedding' || job.spec.kind === 'lm_head' ? embeddingDtype : 'f32';
            dense.set(name, await uploader.uploadDense(lookup(name), t, job.spec.shape, dtype));
          }
        }
        tracker.tensorsDone++;
        tracker.processedBytes += job.parts.reduce((s, p) => s + lookup(p).get(p).byteLength, 0);
        tracker.weights('Quantizing to NF4');
      }
    }
    for (const f of fetches) await (await f).done; // every file complete in the cache
  } catch (e) {
    ctrl.abort(e); // stop the downloads (their bytes so far stay cached for a resume)
    for (const w of nf4.values()) destroyNf4(w);
    for (const t of dense.values()) t.buffer.destroy();
    throw e;
  } finally {
    uploader.destroy();
    await Promise.allSettled(fetches.map(async (f) => (await f).close()));
  }
  const sum = (xs: Iterable<number>): number => [...xs].reduce((a, b) => a + b, 0);
  const warnings: string[] = [];
  const ignored = plan!.ignored;
  if (arch.tiedEmbeddings && ignored.includes('lm_head.weight')) warnings.push('lm_head.weight ignored: the config ties it to embed_tokens.');
  return {
    nf4,
    dense,
    nf4Bytes: sum([...nf4.values()].map((w) => w.words.size + w.absmax.size)),
    denseBytes: sum([...dense.values()].map((t) => t.buffer.size)),
    bnb,
    ignored,
    warnings,
    uploader,
  };
}

/** Downloads the files one after another, in the background, through the cache. */
function startDownloads(files: ModelFiles, paths: string[], opts: Parameters<ModelFiles['fetch']>[1]) {
  const out: ReturnType<ModelFiles['fetch']>[] = [];
  let prev: Promise<unknown> = Promise.resolve();
  for (const path of paths) {
    const f = prev.then(() => files.fetch(path, opts));
    out.push(f);
    prev = f.then((x) => x.done);
  }
  for (const f of out) f.catch(() => undefined); // each failure is seen where it is awaited
  prev.catch(() => undefined);
  return out;
}

function checkShard(st: SafetensorsFile, path: string, index: ShardIndex): void {
  for (const t of st.tensors) {
    const mapped = index.weightMap.get(t.name);
    if (mapped !== path) {
      throw new ModelLoadError(`${path} holds ${t.name}, which ${SAFETENSORS_INDEX_FILE} ${mapped ? `maps to ${mapped}` : 'does not list'}.`);
    }
  }
  for (const [name, file] of index.weightMap) {
    if (file === path && !st.has(name)) throw new ModelLoadError(`${SAFETENSORS_INDEX_FILE} maps ${name} to ${path}, which does not contain it.`);
  }
}

function checkShape(st: SafetensorsFile, name: string, shape: number[]): TensorInfo {
  const t = st.get(name);
  if (t.shape.join() !== shape.join()) {
    throw new ModelLoadError(`${name} has shape [${t.shape}] in ${t.file}, but config.json implies [${shape}].`);
  }
  return t;
}
