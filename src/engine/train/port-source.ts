// Packed rows over a MessagePort, so that batches go from the data worker (which owns the
// prepared dataset in IndexedDB) to the trainer worker without passing through the UI thread.
// The data worker serves a RowSource on one end (serveRowSource); the trainer reads the other end
// as a RowSource (portRowSource), which asks for the next batch while the current one trains.
//
// Requests carry an id and are answered in any order; a batch's arrays are copied once on the
// serving side and transferred, never cloned. Whatever goes wrong on the serving side (no such
// dataset, a shard missing from storage, a range out of bounds) comes back as the message of a
// rejected read; a port closed on either side rejects every read still waiting and every later one.
import type { PackedBatch } from '../forward.ts';
import type { RowSource } from './loop.ts';

type Ask = { type: 'open' } | { type: 'read'; start: number; count: number };
type Request = Ask & { id: number };

interface WireBatch {
  batch: number;
  seqLen: number;
  inputIds: Uint32Array;
  segmentIds: Uint32Array;
  positionIds: Uint32Array;
  lossMask: Uint8Array;
}

type Reply =
  | { type: 'opened'; id: number; rows: number; seqLength: number }
  | { type: 'rows'; id: number; batch: WireBatch }
  | { type: 'error'; id: number; message: string };

/** A port as both ends use it (a DOM MessagePort, or worker_threads' in Node). */
export interface BatchPort {
  postMessage(message: unknown, transfer?: Transferable[]): void;
  addEventListener(type: 'message', listener: (e: MessageEvent) => void): void;
  start(): void;
  close(): void;
}

const messageOf = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/**
 * Answers row requests on `port` from `source` (awaited once: when it rejects, e.g. for an unknown
 * dataset, every request is answered with that rejection's message). Stops when the port closes.
 */
export function serveRowSource(port: BatchPort, source: Promise<RowSource>): void {
  source.catch(() => undefined); // its failure is answered per request
  port.addEventListener('message', (e: MessageEvent<Request>) => void answer(e.data));
  port.start();

  async function answer(req: Request): Promise<void> {
    let reply: Reply;
    let transfer: Transferable[] = [];
    try {
      const s = await source;
      if (req.type === 'open') reply = { type: 'opened', id: req.id, rows: s.rows, seqLength: s.seqLength };
      else {
        const batch = toWire(await s.read(req.start, req.count));
        reply = { type: 'rows', id: req.id, batch };
        transfer = [batch.inputIds.buffer, batch.segmentIds.buffer, batch.positionIds.buffer, batch.lossMask.buffer];
      }
    } catch (e) {
      reply = { type: 'error', id: req.id, message: messageOf(e) };
    }
    port.postMessage(reply, transfer);
  }
}

/** Fresh arrays the sender may give away (a source may hand out views of what it keeps). */
function toWire(b: PackedBatch): WireBatch {
  const n = b.batch * b.seqLen;
  return {
    batch: b.batch,
    seqLen: b.seqLen,
    inputIds: Uint32Array.from(b.inputIds),
    segmentIds: Uint32Array.from(b.segmentIds),
    positionIds: Uint32Array.from(b.positionIds),
    lossMask: b.lossMask ? Uint8Array.from(b.lossMask) : new Uint8Array(n).fill(1),
  };
}

export interface PortRowSource extends RowSource {
  /** Closes the port: reads still waiting, and later ones, reject. */
  close(): void;
}

/** The rows served on the other end of `port` (by serveRowSource); rejects when it cannot open them. */
export async function portRowSource(port: BatchPort): Promise<PortRowSource> {
  const waiting = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>();
  let closed: string | null = null;
  let nextId = 0;

  const shut = (why: string): void => {
    if (closed !== null) return;
    closed = why;
    for (const w of waiting.values()) w.reject(new Error(why));
    waiting.clear();
  };
  port.addEventListener('message', (e: MessageEvent<Reply>) => {
    const w = waiting.get(e.data.id);
    waiting.delete(e.data.id);
    w?.resolve(e.data);
  });
  // Fired when the other end closes or its worker goes away (Node, and browsers that have it).
  (port as unknown as EventTarget).addEventListener('close', () => shut('The data worker closed the batch port.'));
  port.start();

  const ask = (req: Ask): Promise<Reply> => {
    if (closed !== null) return Promise.reject(new Error(closed));
    const id = nextId++;
    return new Promise<Reply>((resolve, reject) => {
      waiting.set(id, { resolve, reject });
      port.postMessage({ ...req, id });
    });
  };

  const opened = await ask({ type: 'open' });
  if (opened.type === 'error') throw new Error(opened.message);
  if (opened.type !== 'opened') throw new Error(`The batch port answered ${opened.type} to open.`);
  const { rows, seqLength } = opened;

  let ahead: { start: number; count: number; reply: Promise<Reply> } | null = null;
  const fetchRows = (start: number, count: number): Promise<Reply> => {
    if (ahead && ahead.start === start && ahead.count === count) {
      const r = ahead.reply;
      ahead = null;
      return r;
    }
    return ask({ type: 'read', start, count });
  };

  return {
    rows,
    seqLength,
    async read(start, count): Promise<PackedBatch> {
      if (!(start >= 0 && count >= 1 && start + count <= rows)) throw new RangeError(`rows ${start}..${start + count} of ${rows}`);
      const pending = fetchRows(start, count);
      // Read ahead what a training loop asks for next: the following rows, or the first ones again.
      const next = start + count < rows ? start + count : 0;
      if (closed === null) {
        ahead = { start: next, count: Math.min(count, rows - next), reply: ask({ type: 'read', start: next, count: Math.min(count, rows - next) }) };
        ahead.reply.catch(() => undefined); // its failure surfaces if and when it is read
      }
      const reply = await pending;
      if (reply.type === 'error') throw new Error(`Reading rows ${start}..${start + count} of the dataset failed: ${reply.message}`);
      if (reply.type !== 'rows') throw new Error(`The batch port answered ${reply.type} to a read.`);
      return reply.batch;
    },
    close() {
      shut('The batch port was closed.');
      port.close();
    },
  };
}
