// The inside of a tokenize worker (workers/tokenize.worker.ts in a browser,
// tokenize-pool-node-worker.ts under Node): builds the tokenizer from the files it is sent, then
// answers each batch with its outcomes packed into two transferable buffers, and with the words
// its tokenizer learned meanwhile, which the pool passes on to the other workers.

import { PretokenMemoTokenizer } from './pretoken-memo.ts';
import { packOutcomes } from './tokenize-batch.ts';
import type { PoolReply, PoolRequest } from './tokenize-pool.ts';
import { tokenizeExample } from './tokenize.ts';
import type { TokenizeContext, TokenizeOptions } from './tokenize.ts';
import { tokenizerFromFiles } from './tokenizer-load.ts';

export type Reply = (reply: PoolReply, transfer?: Transferable[]) => void;

/** A message handler for one worker; `reply` posts back to the pool. */
export function tokenizeServer(reply: Reply): (request: PoolRequest) => Promise<void> {
  let ready: Promise<{ ctx: TokenizeContext; options: TokenizeOptions }> | null = null;
  return async (request) => {
    if (request.type === 'init') {
      const { setup, tokenizerJsonText } = request;
      ready = tokenizerFromFiles(setup.tokenizer.id, { ...setup.tokenizer.files, tokenizerJson: JSON.parse(tokenizerJsonText) }).then((t) => {
        if (t.tokenizer instanceof PretokenMemoTokenizer) t.tokenizer.takeLearned(); // start keeping what it learns
        return { ctx: { tokenizer: t.tokenizer, info: t.info, template: setup.template }, options: setup.options };
      });
      try {
        await ready;
        reply({ type: 'ready' });
      } catch (e) {
        reply({ type: 'failed', seq: null, message: e instanceof Error ? e.message : String(e) });
      }
      return;
    }
    if (request.type === 'teach') {
      // Sent only after this worker reported ready; a lesson lost would only cost speed.
      const tok = ready && (await ready.catch(() => null))?.ctx.tokenizer;
      if (tok instanceof PretokenMemoTokenizer) tok.teach(request.learned);
      return;
    }
    try {
      if (!ready) throw new Error('a batch arrived before the tokenizer');
      const { ctx, options } = await ready;
      const outcomes = packOutcomes(request.examples.map((e) => tokenizeExample(e, ctx, options)));
      const learned = ctx.tokenizer instanceof PretokenMemoTokenizer ? ctx.tokenizer.takeLearned() : [];
      reply({ type: 'done', seq: request.seq, outcomes, learned }, [outcomes.ids.buffer, outcomes.masks.buffer]);
    } catch (e) {
      reply({ type: 'failed', seq: request.seq, message: e instanceof Error ? e.message : String(e) });
    }
  };
}
