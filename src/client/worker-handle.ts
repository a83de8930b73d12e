// A worker behind a stable, typed proxy that survives restarts and never leaves a call hanging.
//
// comlink alone waits forever for the answer of a worker that died. Here every call is tracked;
// when the worker fires 'error' (an uncaught error in its global scope, or a script that failed
// to load) or 'messageerror', the worker is terminated, every pending call rejects with a
// WorkerCrashedError, and listeners hear a 'crashed' event. restart() terminates the worker and
// starts a fresh one behind the same proxy object.
import * as Comlink from 'comlink';
import type { WorkerName } from './api.ts';
import { WorkerCrashedError, errorMessage, toRemoteError } from './errors.ts';

export type WorkerStatus = 'idle' | 'running' | 'crashed';

export type WorkerEvent =
  | { type: 'started'; worker: WorkerName; generation: number }
  | { type: 'crashed'; worker: WorkerName; generation: number; message: string }
  | { type: 'call-failed'; worker: WorkerName; generation: number; method: string; error: Error };

/** Lists every method of an API once, so the proxy object has real, enumerable keys. */
export type MethodList<Api> = Record<keyof Api & string, true>;

interface Pending {
  method: string;
  reject: (e: Error) => void;
}

interface Generation {
  id: number;
  worker: Worker;
  remote: Record<string, (...args: unknown[]) => Promise<unknown>>;
  pending: Set<Pending>;
  /** Why it stopped; null while it runs. */
  stopped: string | null;
}

export class WorkerHandle<Api extends object> {
  /** The stable proxy: the same object before and after restarts. */
  readonly api: Api;
  private gen: Generation | null = null;
  private generations = 0;
  private readonly listeners = new Set<(e: WorkerEvent) => void>();

  constructor(
    readonly name: WorkerName,
    private readonly spawn: () => Worker,
    methods: MethodList<Api>,
  ) {
    const api: Record<string, (...args: unknown[]) => Promise<unknown>> = {};
    for (const method of Object.keys(methods)) api[method] = (...args) => this.call(method, args);
    this.api = Object.freeze(api) as Api;
  }

  get status(): WorkerStatus {
    if (!this.gen) return 'idle';
    return this.gen.stopped === null ? 'running' : 'crashed';
  }

  get generation(): number {
    return this.gen?.id ?? 0;
  }

  subscribe(listener: (e: WorkerEvent) => void): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  /** Starts the worker if it has not been started yet; a crashed worker stays crashed. */
  start(): void {
    if (!this.gen) this.launch();
  }

  /** Terminates the worker (pending calls reject) and starts a fresh one. */
  restart(): void {
    if (this.gen) this.stop(this.gen, `the ${this.name} worker was restarted`);
    this.launch();
  }

  private launch(): void {
    const worker = this.spawn();
    const gen: Generation = {
      id: ++this.generations,
      worker,
      remote: Comlink.wrap<Api>(worker) as unknown as Generation['remote'],
      pending: new Set(),
      stopped: null,
    };
    worker.addEventListener('error', (ev) => {
      ev.preventDefault();
      const message =
        ev instanceof ErrorEvent && ev.message
          ? ev.message
          : `the ${this.name} worker failed to start (its script could not be loaded)`;
      this.crash(gen, message);
    });
    worker.addEventListener('messageerror', () => {
      this.crash(gen, `a message from the ${this.name} worker could not be read`);
    });
    this.gen = gen;
    this.emit({ type: 'started', worker: this.name, generation: gen.id });
  }

  private crash(gen: Generation, message: string): void {
    if (gen.stopped !== null) return;
    this.stop(gen, message);
    this.emit({ type: 'crashed', worker: this.name, generation: gen.id, message });
  }

  private stop(gen: Generation, why: string): void {
    if (gen.stopped === null) gen.stopped = why;
    gen.worker.terminate();
    for (const p of gen.pending) {
      p.reject(new WorkerCrashedError(this.name, `The ${this.name} worker stopped during ${p.method}(): ${why}`));
    }
    gen.pending.clear();
  }

  private call(method: string, args: unknown[]): Promise<unknown> {
    if (!this.gen) this.launch();
    const gen = this.gen!;
    if (gen.stopped !== null) {
      return Promise.reject(
        new WorkerCrashedError(this.name, `The ${this.name} worker has stopped; restart it first. ${gen.stopped}`),
      );
    }
    // A function argument becomes a comlink proxy, so the worker can call it back.
    const wired = args.map((a) => (typeof a === 'function' ? Comlink.proxy(a as () => unknown) : a));
    return new Promise((resolve, reject) => {
      const pending: Pending = { method, reject };
      gen.pending.add(pending);
      gen.remote[method](...wired).then(
        (value) => {
          if (gen.pending.delete(pending)) resolve(value);
        },
        (thrown: unknown) => {
          if (!gen.pending.delete(pending)) return;
          const error = toRemoteError(this.name, method, thrown);
          this.emit({ type: 'call-failed', worker: this.name, generation: gen.id, method, error });
          reject(error);
        },
      );
    });
  }

  private emit(e: WorkerEvent): void {
    for (const l of this.listeners) {
      try {
        l(e);
      } catch (err) {
        console.error(`webtune: a ${this.name} worker listener failed: ${errorMessage(err)}`);
      }
    }
  }
}
