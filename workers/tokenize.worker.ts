// A tokenize worker, spawned by the data worker (workers/tokenize-pool.ts): see
// src/data/tokenize-serve.ts.
import { tokenizeServer } from '../src/data/tokenize-serve.ts';
import type { PoolRequest } from '../src/data/tokenize-pool.ts';

const scope = self as unknown as { postMessage(message: unknown, transfer: Transferable[]): void; onmessage: ((e: MessageEvent<PoolRequest>) => void) | null };
const handle = tokenizeServer((reply, transfer) => scope.postMessage(reply, transfer ?? []));
scope.onmessage = (e) => void handle(e.data);
