// The trainer worker's quantization pool: module Workers running quant.worker.ts, one per core but
// one (the trainer worker itself reads weights and writes the file meanwhile), at most 16.
import { QuantPool, type QuantReply } from '../src/io/quant-pool.ts';

export function browserPoolSize(): number {
  const cores = (globalThis.navigator as { hardwareConcurrency?: number } | undefined)?.hardwareConcurrency ?? 2;
  return Math.max(1, Math.min(16, cores - 1));
}

export function createBrowserQuantPool(size = browserPoolSize()): QuantPool {
  return new QuantPool((onReply, onError) => {
    const w = new Worker(new URL('./quant.worker.ts', import.meta.url), { type: 'module', name: 'quant' });
    w.addEventListener('message', (e: MessageEvent<QuantReply>) => onReply(e.data));
    w.addEventListener('error', (e) => {
      e.preventDefault();
      onError(new Error(e.message || 'the quantization worker script could not be loaded'));
    });
    return { post: (task, transfer) => w.postMessage(task, transfer), terminate: () => w.terminate() };
  }, size);
}
