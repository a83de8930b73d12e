// A tokenize worker under Node (worker_threads): see tokenize-serve.ts.
import { parentPort } from 'node:worker_threads';
import { tokenizeServer } from './tokenize-serve.ts';

if (!parentPort) throw new Error('tokenize-pool-node-worker.ts runs as a worker_threads Worker');
const port = parentPort;
const handle = tokenizeServer((reply, transfer) => port.postMessage(reply, (transfer ?? []) as ArrayBuffer[]));
port.on('message', (request) => void handle(request));
