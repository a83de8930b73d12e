// Training checkpoints: everything a run needs to continue exactly where it stopped, as one
// safetensors file committed through a CheckpointStore (src/io/checkpoint-store.ts):
//   tensors   <param>.weight                     the LoRA A / B (f32), PEFT's module paths
//             optimizer.<param>.exp_avg(_sq)       AdamW's 32-bit moments (f32), torch's names, or
//             optimizer.<param>.exp_avg(_sq).codes / .absmax   the 8-bit states as stored on the
//                                                GPU (codes U8, absmax f32): bit-exact, no requantizing
//   metadata  "webtune.checkpoint": the JSON CheckpointState: settings, steps taken and updates
//             applied (schedule and bias correction), the data cursor and epoch, skip counters,
//             early stopping, run identity (run id, model id, dataset fingerprint), and the dropout
//             RNG, which is counter-based (lora-dropout.ts), so its state is its seed and the step.
// The commit record (the small JSON beside the file) carries a CheckpointInfo, so a reloaded tab
// can offer to resume without reading the tensors.
import { readTensor, readU32, type Tensor } from '../tensor.ts';
import type { Adamw8State, AdamwState } from '../adamw.ts';
import { setGradNormCount } from '../gradnorm.ts';
import {
  commitCheckpoint,
  listCommitted,
  loadCommitted,
  type CheckpointStore,
} from '../../io/checkpoint-store.ts';
import { bytesSource, openSafetensors, writeSafetensors, type SafetensorsFile, type TensorToWrite } from '../../io/safetensors.ts';
import type { EarlyStopState } from './eval.ts';
import type { TrainSettings } from './loop.ts';
import type { Param, Trainer } from './step.ts';

export const CHECKPOINT_FORMAT = 'webtune-train-checkpoint';
export const CHECKPOINT_VERSION = 1;
const META_KEY = 'webtune.checkpoint';

/** Why a checkpoint was written. */
export type CheckpointReason = 'interval' | 'pause' | 'stop' | 'end';

/** What the run is, so that a resume can check it has the same model and data. */
export interface RunIdentity {
  runId: string;
  /** The model's Hub id (or demo id); null when the caller did not say. */
  modelId: string | null;
  /** The prepared dataset's fingerprint; null when the caller did not say. */
  dataset: string | null;
}

/** The loop's position: what, with the tensors, makes a resumed run continue exactly. */
export interface LoopPosition {
  /** Optimizer steps taken (the schedule's position); the next step is step + 1. */
  step: number;
  totalSteps: number;
  /** Updates applied (AdamW's bias correction), steps skipped in all and in a row. */
  updates: number;
  skipped: number;
  skippedInARow: number;
  /** The next train row to read, and the epochs completed before it. */
  cursor: number;
  epoch: number;
  /** For tokens/s and the ETA across the pause. */
  tokensSeen: number;
  elapsedMs: number;
  earlyStop: EarlyStopState;
  lastEvalLoss: number | null;
}

export interface CheckpointState extends LoopPosition {
  format: typeof CHECKPOINT_FORMAT;
  version: number;
  run: RunIdentity;
  reason: CheckpointReason;
  /** Date.now(). */
  createdAt: number;
  settings: TrainSettings;
  /** The data the run reads, to refuse a resume on other data. */
  data: { rows: number; seqLength: number; evalRows: number };
  /** LoRA dropout's masks are a hash of (seed, step, micro-batch, layer, linear, element). */
  rng: { kind: 'counter-hash'; seed: number; step: number };
  /** Per parameter, the optimizer state's precision (8-bit falls back to 32 below min8bitSize). */
  optimizerBits: Record<string, 8 | 32>;
}

/** What the Train tab shows about a stored checkpoint (read without its tensors). */
export interface CheckpointInfo {
  runId: string;
  modelId: string | null;
  dataset: string | null;
  step: number;
  totalSteps: number;
  epoch: number;
  reason: CheckpointReason;
  createdAt: number;
  settings: TrainSettings;
  /** Size of the checkpoint file. */
  bytes: number;
  lastEvalLoss: number | null;
}

/** A checkpoint read back: its state and its tensors. */
export interface TrainCheckpoint {
  state: CheckpointState;
  file: SafetensorsFile;
}

const bytesOf = (x: ArrayBufferView): Uint8Array => new Uint8Array(x.buffer, x.byteOffset, x.byteLength);

/** One stored tensor of a parameter's optimizer state: where it lives on the GPU and how to read it. */
interface StateTensor {
  suffix: string;
  dtype: 'F32' | 'U8';
  shape: number[];
  buffer: GPUBuffer;
  read(device: GPUDevice): Promise<Uint8Array>;
}

/** AdamW's moments as stored: f32 (32-bit), or the 8-bit codes (raw bytes) and per-block absmax. */
function stateTensors(p: Param): StateTensor[] {
  const s: AdamwState = p.state;
  const f32 = (suffix: string, t: Tensor): StateTensor => ({
    suffix,
    dtype: 'F32',
    shape: [...t.shape],
    buffer: t.buffer,
    read: async (d) => bytesOf(await readTensor(d, t)),
  });
  // Codes are packed 4 to a u32 word; the buffer's bytes are stored as they are, padding included.
  const codes = (suffix: string, b: GPUBuffer): StateTensor => ({
    suffix,
    dtype: 'U8',
    shape: [b.size],
    buffer: b,
    read: async (d) => bytesOf(await readU32(d, { buffer: b, length: b.size / 4 })),
  });
  if (s.bits === 32) return [f32('exp_avg', s.m), f32('exp_avg_sq', s.v)];
  const q: Adamw8State = s;
  return [codes('exp_avg.codes', q.m), f32('exp_avg.absmax', q.mAbsmax), codes('exp_avg_sq.codes', q.v), f32('exp_avg_sq.absmax', q.vAbsmax)];
}

/** The trainer's tensors, each read from the GPU only when the writer reaches it. */
export function trainerTensors(tr: Trainer): TensorToWrite[] {
  const device = tr.kernels.device;
  const out: TensorToWrite[] = [];
  for (const p of tr.params) {
    out.push({ name: `${p.name}.weight`, dtype: 'F32', shape: [...p.param.shape], data: async () => bytesOf(await readTensor(device, p.param)) });
    for (const t of stateTensors(p)) out.push({ name: `optimizer.${p.name}.${t.suffix}`, dtype: t.dtype, shape: t.shape, data: () => t.read(device) });
  }
  return out;
}

export function checkpointInfoOf(state: CheckpointState, bytes: number): CheckpointInfo {
  const { run, step, totalSteps, epoch, reason, createdAt, settings, lastEvalLoss } = state;
  return { runId: run.runId, modelId: run.modelId, dataset: run.dataset, step, totalSteps, epoch, reason, createdAt, settings, bytes, lastEvalLoss };
}

/** Writes the trainer's state and `state` as a new checkpoint in `store` (atomic; see checkpoint-store.ts). */
export async function saveCheckpoint(store: CheckpointStore, tr: Trainer, state: Omit<CheckpointState, 'format' | 'version' | 'optimizerBits'>): Promise<CheckpointInfo> {
  const full: CheckpointState = {
    format: CHECKPOINT_FORMAT,
    version: CHECKPOINT_VERSION,
    ...state,
    optimizerBits: Object.fromEntries(tr.params.map((p) => [p.name, p.state.bits])),
  };
  const stream = writeSafetensors(trainerTensors(tr), { [META_KEY]: JSON.stringify(full) });
  const record = await commitCheckpoint(store, stream, ({ bytes }) => checkpointInfoOf(full, bytes));
  return record.info;
}

/** The state and tensors of checkpoint bytes; throws when they are not a checkpoint of this format. */
export async function decodeCheckpoint(bytes: Uint8Array, name = 'checkpoint'): Promise<TrainCheckpoint> {
  const file = await openSafetensors(bytesSource(bytes, name));
  const raw = file.metadata[META_KEY];
  if (!raw) throw new Error(`${name}: not a training checkpoint (no ${META_KEY} metadata)`);
  const state = JSON.parse(raw) as CheckpointState;
  if (state.format !== CHECKPOINT_FORMAT) throw new Error(`${name}: unknown checkpoint format ${JSON.stringify(state.format)}`);
  if (state.version !== CHECKPOINT_VERSION) throw new Error(`${name}: checkpoint version ${state.version}; this build reads version ${CHECKPOINT_VERSION}`);
  return { state, file };
}

/**
 * The newest whole checkpoint in `store` (size and CRC as recorded), decoded; null when there is
 * none. `problems` collects why newer files were passed over (damaged, missing).
 */
export async function loadCheckpoint(store: CheckpointStore, problems: string[] = []): Promise<TrainCheckpoint | null> {
  const c = await loadCommitted<CheckpointInfo>(store, problems);
  return c ? decodeCheckpoint(c.data, c.record.file) : null;
}

/** The newest checkpoint's info, read from its record only (cheap: for a reloaded tab). */
export async function latestCheckpointInfo(store: CheckpointStore): Promise<CheckpointInfo | null> {
  const [newest] = await listCommitted<CheckpointInfo>(store);
  return newest?.info ?? null;
}

/**
 * Loads the checkpoint's LoRA weights and optimizer states into a fresh trainer made with the same
 * settings (createTrainer), and its step counters. Throws, naming the tensor, on any mismatch.
 */
export async function restoreTrainer(tr: Trainer, ckpt: TrainCheckpoint): Promise<void> {
  const { file, state } = ckpt;
  const q = tr.kernels.device.queue;
  const load = async (name: string, dtype: 'F32' | 'U8', shape: readonly number[], buffer: GPUBuffer) => {
    if (!file.has(name)) throw new Error(`checkpoint: no tensor ${name} (was it made with other LoRA or optimizer settings?)`);
    const t = file.get(name);
    if (t.dtype !== dtype || t.shape.join() !== shape.join()) throw new Error(`checkpoint: ${name} is ${t.dtype} [${t.shape}], the trainer has ${dtype} [${shape}]`);
    const bytes = await file.read(name);
    q.writeBuffer(buffer, 0, bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
  const expected = new Set(tr.params.map((p) => p.name));
  for (const name of Object.keys(state.optimizerBits)) if (!expected.has(name)) throw new Error(`checkpoint: parameter ${name} is not in this trainer`);
  for (const p of tr.params) {
    if (state.optimizerBits[p.name] !== p.state.bits) throw new Error(`checkpoint: ${p.name} has ${state.optimizerBits[p.name]}-bit optimizer states, the trainer ${p.state.bits}-bit`);
    await load(`${p.name}.weight`, 'F32', p.param.shape, p.param.buffer);
    for (const t of stateTensors(p)) await load(`optimizer.${p.name}.${t.suffix}`, t.dtype, t.shape, t.buffer);
  }
  tr.step = state.step;
  tr.updates = state.updates;
  setGradNormCount(tr.kernels.device, tr.norm, state.updates); // AdamW's bias correction reads the GPU's count
  tr.skipped = state.skipped;
  tr.skippedInARow = state.skippedInARow;
}
