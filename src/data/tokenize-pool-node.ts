// Tokenize workers under Node (tests, the bench): worker_threads running
// tokenize-pool-node-worker.ts. From TypeScript sources each worker registers tsx first.
import { Worker } from 'node:worker_threads';
import type { PoolReply, SpawnTokenizeWorker } from './tokenize-pool.ts';

// Built from a variable, so that bundlers leave it alone.
const WORKER_FILE = 'tokenize-pool-node-worker.ts';

/** Spawns worker_threads; `workerUrl` overrides the worker script (a bundle's own file). */
export function nodeTokenizeWorkers(workerUrl: URL = new URL(WORKER_FILE, import.meta.url)): SpawnTokenizeWorker {
  return (onReply, onError) => {
    const boot = `const { register } = await import('tsx/esm/api'); register(); await import(${JSON.stringify(workerUrl.href)});`;
    const w = workerUrl.pathname.endsWith('.ts') ? new Worker(boot, { eval: true }) : new Worker(workerUrl);
    w.on('message', (r: PoolReply) => onReply(r));
    w.on('error', onError);
    w.on('exit', (code) => {
      if (code !== 0) onError(new Error(`it exited with code ${code}`));
    });
    return { post: (request) => w.postMessage(request), terminate: () => void w.terminate() };
  };
}
