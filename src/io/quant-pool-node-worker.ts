// A quantization pool worker under Node (worker_threads): runs each task and sends the result back.
import { parentPort } from 'node:worker_threads';
import { runQuantTask, type QuantTask } from './quant-pool.ts';

if (!parentPort) throw new Error('quant-pool-node-worker.ts runs as a worker_threads Worker');
const port = parentPort;
port.on('message', (task: QuantTask) => {
  const { reply, transfer } = runQuantTask(task);
  port.postMessage(reply, transfer);
});
