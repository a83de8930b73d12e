// A quantization pool worker in the browser (spawned by the trainer worker, see quant-pool.ts):
// quantizes or merges one piece per message and sends the bytes back, transferred.
import { runQuantTask, type QuantTask } from '../src/io/quant-pool.ts';

const scope = self as unknown as { onmessage: ((e: MessageEvent<QuantTask>) => void) | null; postMessage(m: unknown, transfer: Transferable[]): void };
scope.onmessage = (e) => {
  const { reply, transfer } = runQuantTask(e.data);
  scope.postMessage(reply, transfer);
};
