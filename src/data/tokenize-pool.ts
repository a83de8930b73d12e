// A small pool of tokenize workers (module Workers spawned by the data worker in a browser,
// worker_threads under Node: tokenize-pool-node.ts). Each worker builds its own copy of the
// tokenizer from the same files and tokenizes whole batches; the pool sends each batch to the
// least busy worker. Results are matched to their batch, and the pipeline consumes batches in the
// order it read them, so what is stored does not depend on which worker finished first.

import type { Remembered } from './pretoken-memo.ts';
import type { EffectiveTemplate } from './templates.ts';
import { unpackOutcomes } from './tokenize-batch.ts';
import type { PackedOutcomes, TokenizeExecutor } from './tokenize-batch.ts';
import type { TokenizeOptions, TokenizeResult } from './tokenize.ts';
import type { LoadedTokenizer, TokenizerFiles } from './tokenizer-load.ts';
import type { Example, Outcome } from './types.ts';

/** What every worker needs to tokenize as this thread would (plain data). */
export interface TokenizeSetup {
  tokenizer: { id: string; files: TokenizerFiles };
  template: EffectiveTemplate;
  options: TokenizeOptions;
}

/** Pre-tokens and their ids that one worker learned (see PretokenMemoTokenizer.takeLearned). */
export type Learned = [string, Remembered][];

export type PoolRequest =
  | { type: 'init'; setup: TokenizeSetup; tokenizerJsonText: string }
  | { type: 'batch'; seq: number; examples: readonly Example[] }
  | { type: 'teach'; learned: Learned };

export type PoolReply =
  | { type: 'ready' }
  | { type: 'done'; seq: number; outcomes: PackedOutcomes; learned: Learned }
  | { type: 'failed'; seq: number | null; message: string };

/** One worker as the pool sees it. */
export interface PoolWorker {
  post(request: PoolRequest): void;
  terminate(): void;
}

/** Starts a worker whose replies go to `onReply`; `onError` when it dies or cannot start. */
export type SpawnTokenizeWorker = (onReply: (reply: PoolReply) => void, onError: (error: Error) => void) => PoolWorker;

/** Examples per batch: big enough that a message costs little, small enough to keep work spread. */
export const POOL_BATCH_EXAMPLES = 32;

interface Slot {
  worker: PoolWorker;
  waiting: Map<number, { resolve: (o: Outcome<TokenizeResult>[]) => void; reject: (e: Error) => void }>;
  ready: { resolve: () => void; reject: (e: Error) => void } | null;
}

export function setupOf(tokenizer: LoadedTokenizer, template: EffectiveTemplate, options: TokenizeOptions): TokenizeSetup {
  return { tokenizer: { id: tokenizer.id, files: tokenizer.files }, template, options };
}

/** Starts `size` workers and resolves once each has built its tokenizer. */
export async function startTokenizePool(spawn: SpawnTokenizeWorker, size: number, setup: TokenizeSetup): Promise<TokenizeExecutor> {
  if (!(size >= 1)) throw new RangeError(`a tokenize pool needs at least one worker (got ${size})`);
  // tokenizer.json is large: as text it crosses to a worker far faster than as an object.
  const tokenizerJsonText = JSON.stringify(setup.tokenizer.files.tokenizerJson);
  const request: PoolRequest = {
    type: 'init',
    setup: { ...setup, tokenizer: { id: setup.tokenizer.id, files: { ...setup.tokenizer.files, tokenizerJson: null } } },
    tokenizerJsonText,
  };
  let broken: Error | null = null;
  const slots: Slot[] = [];
  const fail = (slot: Slot, error: Error): void => {
    broken ??= new Error(`A tokenize worker failed: ${error.message}`);
    slot.ready?.reject(broken);
    for (const w of slot.waiting.values()) w.reject(broken);
    slot.waiting.clear();
  };
  /** The waiter of batch `seq`, removed from its slot. */
  const settle = (slot: Slot, seq: number) => {
    const w = slot.waiting.get(seq);
    slot.waiting.delete(seq);
    return w;
  };
  const readies: Promise<void>[] = [];
  for (let i = 0; i < size; i++) {
    const slot: Slot = { worker: null as unknown as PoolWorker, waiting: new Map(), ready: null };
    readies.push(new Promise<void>((resolve, reject) => (slot.ready = { resolve, reject })));
    slot.worker = spawn(
      (reply) => {
        if (reply.type === 'ready') {
          slot.ready?.resolve();
        } else if (reply.type === 'done') {
          // What one worker's tokenizer learned spares the others the same work (pretoken-memo.ts).
          if (reply.learned.length > 0) for (const other of slots) if (other !== slot) other.worker.post({ type: 'teach', learned: reply.learned });
          settle(slot, reply.seq)?.resolve(unpackOutcomes(reply.outcomes));
        } else if (reply.seq === null) {
          fail(slot, new Error(reply.message));
        } else {
          settle(slot, reply.seq)?.reject(new Error(`A tokenize worker failed on a batch: ${reply.message}`));
        }
      },
      (error) => fail(slot, error),
    );
    slots.push(slot);
    slot.worker.post(request);
  }
  const close = (): void => {
    for (const s of slots) s.worker.terminate();
  };
  try {
    await Promise.all(readies);
  } catch (e) {
    close();
    throw e;
  }
  let seq = 0;
  return {
    batchExamples: POOL_BATCH_EXAMPLES,
    // Two batches per worker: one being tokenized, the next already waiting in its queue.
    inFlight: 2 * size,
    tokenize(examples) {
      if (broken) return Promise.reject(broken);
      let slot = slots[0];
      for (const s of slots) if (s.waiting.size < slot.waiting.size) slot = s;
      const id = seq++;
      return new Promise((resolve, reject) => {
        slot.waiting.set(id, { resolve, reject });
        slot.worker.post({ type: 'batch', seq: id, examples });
      });
    },
    close,
  };
}
