// The quantization pool under Node: worker_threads running quant-pool-node-worker.ts. From
// TypeScript sources (tests, tsx) each worker registers tsx first; a bundle (the bench) passes the
// URL of its bundled worker file.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { QuantPool, type QuantPoolOptions, type QuantReply } from './quant-pool.ts';

export interface NodeQuantPoolOptions extends QuantPoolOptions {
  /** Workers (default: the cores, less one for the thread that reads and writes). */
  size?: number;
  /** The worker script (default: quant-pool-node-worker.ts next to this file). */
  workerUrl?: URL;
}

// Built from a variable, so that bundlers leave it alone (a bundle passes its own workerUrl).
const WORKER_FILE = 'quant-pool-node-worker.ts';

export function defaultPoolSize(): number {
  return Math.max(1, availableParallelism() - 1);
}

/** Call close() when done: live workers keep the process running. */
export function createNodeQuantPool(opts: NodeQuantPoolOptions = {}): QuantPool {
  const url = opts.workerUrl ?? new URL(WORKER_FILE, import.meta.url);
  const spawn = (): Worker => {
    if (!url.pathname.endsWith('.ts')) return new Worker(url);
    const boot = `const { register } = await import('tsx/esm/api'); register(); await import(${JSON.stringify(url.href)});`;
    return new Worker(boot, { eval: true });
  };
  return new QuantPool(
    (onReply, onError) => {
      const w = spawn();
      w.on('message', (r: QuantReply) => onReply(r));
      w.on('error', onError);
      w.on('exit', (code) => {
        if (code !== 0) onError(new Error(`exited with code ${code}`));
      });
      return { post: (task, transfer) => w.postMessage(task, transfer), terminate: () => void w.terminate() };
    },
    opts.size ?? defaultPoolSize(),
    opts,
  );
}
