// The quantization pool (src/io/quant-pool.ts): GGUF files made with worker_threads are byte for
// byte the files made on one thread, for every type offered and with an adapter merged in the pool;
// pieces come back in order whatever order the workers finish in; failures and close() reject.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collectBytes } from '../src/io/gguf.ts';
import { GGUF_EXPORT_TYPES, planExport, runExport } from '../src/io/export-job.ts';
import { fileBytes } from '../src/io/export-files.ts';
import { mergeLora } from '../src/io/merge.ts';
import { GGMLType, quantize } from '../src/io/quants/index.ts';
import { QuantPool, runQuantTask, type QuantReply, type QuantTask, type SpawnPoolWorker } from '../src/io/quant-pool.ts';
import { createNodeQuantPool } from '../src/io/quant-pool-node.ts';
import { MemorySink } from '../src/io/sink.ts';
import { firstDiff, gaussian } from './fixtures/gguf/helpers.ts';
import { randomAdapter, wideExportModel } from './export-helpers.ts';

/** Workers in this thread that answer after `delay(task)` ms: replies can come in any order. */
function inThreadWorkers(delay: (t: QuantTask, worker: number) => number, log: number[][] = []): SpawnPoolWorker {
  let n = 0;
  return (onReply) => {
    const me = n++;
    log[me] = [];
    return {
      post(task) {
        log[me].push(task.id);
        const { reply } = runQuantTask(task);
        setTimeout(() => onReply(reply), delay(task, me));
      },
      terminate() {},
    };
  };
}

describe('QuantPool (workers in this thread)', () => {
  it('pieces finish out of order and still come back in order: the bytes of quantize() on one thread', async () => {
    const log: number[][] = [];
    // Later pieces finish first.
    const pool = new QuantPool(inThreadWorkers((t) => 40 - (t.id % 8) * 5, log), 3, { minPieceElements: 256, maxPieceElements: 1024 });
    const src = gaussian(256 * 23, 9, 0.05); // 23 super-blocks: pieces of 1024 leave a short last one
    for (const type of [GGMLType.Q4_K, GGMLType.Q6_K, GGMLType.Q8_0, GGMLType.BF16]) {
      const got = await pool.quantize(type, src);
      expect(firstDiff(got, quantize(type, src)), String(type)).toBe(-1);
    }
    expect(log.every((ids) => ids.length > 1)).toBe(true); // every worker took pieces
    const [rows, cols, r] = [37, 48, 4];
    const w = gaussian(rows * cols, 1);
    const a = gaussian(r * cols, 2);
    const b = gaussian(rows * r, 3);
    expect(firstDiff(await pool.merge(w, a, b, rows, cols, r, 0.7), mergeLora(w, a, b, rows, cols, r, 0.7))).toBe(-1);
    expect(firstDiff(w, gaussian(rows * cols, 1))).toBe(-1); // the input is left alone
    pool.close();
  });

  it('small tensors and malformed input stay on this thread (quantize says what is wrong)', async () => {
    const log: number[][] = [];
    const pool = new QuantPool(inThreadWorkers(() => 0, log), 2);
    expect(firstDiff(await pool.quantize(GGMLType.Q4_0, gaussian(64, 1)), quantize(GGMLType.Q4_0, gaussian(64, 1)))).toBe(-1);
    await expect(pool.quantize(GGMLType.Q4_K, new Float32Array(100))).rejects.toThrow(/not a whole number of 256-element blocks/);
    expect(log.flat()).toEqual([]);
    pool.close();
  });

  it('close() rejects the work not done with an AbortError; a dead worker fails the rest', async () => {
    const pool = new QuantPool(inThreadWorkers(() => 1000), 2, { minPieceElements: 256 });
    const p = pool.quantize(GGMLType.Q8_0, gaussian(4096, 1));
    pool.close('Export cancelled.');
    await expect(p).rejects.toMatchObject({ name: 'AbortError', message: 'Export cancelled.' });
    await expect(pool.quantize(GGMLType.Q8_0, gaussian(4096, 1))).rejects.toMatchObject({ name: 'AbortError' });

    let crash: (e: Error) => void = () => undefined;
    const dying = new QuantPool((_onReply, onError) => {
      crash = onError;
      return { post() {}, terminate() {} };
    }, 1, { minPieceElements: 256 });
    const q = dying.quantize(GGMLType.Q8_0, gaussian(4096, 1));
    crash(new Error('out of memory'));
    await expect(q).rejects.toThrow('A quantization worker stopped: out of memory');
  });
});

describe('Node worker_threads pool: GGUF bytes equal the single-threaded writer', () => {
  let pool: QuantPool;
  const model = wideExportModel();
  const adapter = randomAdapter(model.arch, 77);
  beforeAll(() => {
    // Small pieces, so that every tensor is split across the workers.
    pool = createNodeQuantPool({ size: 3, minPieceElements: 4096, maxPieceElements: 16384 });
  });
  afterAll(() => pool?.close());

  for (const type of GGUF_EXPORT_TYPES) {
    it(`${type}, adapter merged`, async () => {
      const one = planExport(model, adapter, { kind: 'gguf', ggufType: type, modelfile: false });
      const many = planExport(model, adapter, { kind: 'gguf', ggufType: type, modelfile: false }, { pool });
      const a = await fileBytes(one.files[0]);
      const before = pool.completed;
      const b = await collectBytes(many.files[0].chunks());
      // Every linear (merge, then quantize) went through the workers in several pieces.
      expect(pool.completed - before).toBeGreaterThan(2 * 14);
      expect(b.length).toBe(one.files[0].size);
      expect(firstDiff(a, b)).toBe(-1);
    });
  }

  it('tensors read in row chunks (one chunk ahead) give the same bytes', async () => {
    for (const type of ['q4_k_m', 'q8_0'] as const) {
      const one = planExport(model, adapter, { kind: 'gguf', ggufType: type, modelfile: false });
      const chunked = planExport(model, adapter, { kind: 'gguf', ggufType: type, modelfile: false }, { pool, chunkElements: 256 * 40 });
      const readsBefore = model.base.reads;
      const b = await collectBytes(chunked.files[0].chunks());
      // The embedding and lm_head (256 rows) come in 7 chunks of 40 rows; every merged linear is
      // chunked too, but read (and merged) once; norms once.
      expect(model.base.reads - readsBefore).toBe(2 * 7 + (model.tensors.length - 2));
      expect(firstDiff(await fileBytes(one.files[0]), b), type).toBe(-1);
    }
  });

  it('the merged bf16 model too', async () => {
    const one = new MemorySink();
    const many = new MemorySink();
    await runExport(planExport(model, adapter, { kind: 'merged' }), one);
    await runExport(planExport(model, adapter, { kind: 'merged' }, { pool }), many);
    const name = 'model.safetensors';
    expect(firstDiff(one.files.get(name)!, many.files.get(name)!)).toBe(-1);
  });

  it('pool.quantize over real workers equals quantize()', async () => {
    const src = gaussian(256 * 61, 3, 0.02);
    expect(firstDiff(await pool.quantize(GGMLType.Q3_K, src), quantize(GGMLType.Q3_K, src))).toBe(-1);
  });
});

describe('worker protocol', () => {
  it('runQuantTask answers errors as messages, with nothing to transfer', () => {
    const task: QuantTask = { id: 5, op: 'quantize', type: GGMLType.Q4_K, src: new Float32Array(10) };
    const { reply, transfer } = runQuantTask(task);
    expect(transfer).toEqual([]);
    expect((reply as Extract<QuantReply, { error: string }>).error).toMatch(/256-element blocks/);
  });
});
