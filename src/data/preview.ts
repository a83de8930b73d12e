// The first examples as the model will see them: rendered by the template, tokenized, cut to the
// max length, with the trained tokens marked. Runs are decoded from the token ids, so what is
// highlighted is exactly what the loss sees (truncation included).

import { DataError } from './errors.ts';
import { normalizeRecord } from './formats.ts';
import { IssueLog } from './issues.ts';
import { detectMapping } from './prepare.ts';
import { checkOptions, DEFAULT_PREPARE_OPTIONS } from './prepare-options.ts';
import type { PrepareOptions } from './prepare-options.ts';
import type { RecordSource } from './record-source.ts';
import { resolveTemplate, TemplateError } from './templates.ts';
import type { TemplateId } from './templates.ts';
import type { LoadedTokenizer } from './tokenizer-load.ts';
import { tokenizeExample } from './tokenize.ts';
import type { FormatMapping } from './formats.ts';

export interface TextRun {
  text: string;
  trained: boolean;
}

export type PreviewExample =
  | { where: string; ok: true; runs: TextRun[]; tokens: number; trainedTokens: number; truncated: boolean; fullLength: number; clipped: boolean }
  | { where: string; ok: false; reason: string; detail?: string };

export interface PreviewResult {
  template: { id: TemplateId; endOfTurn: string; warnings: string[] };
  tokenizer: { id: string; hasChatTemplate: boolean };
  mapping: FormatMapping;
  examples: PreviewExample[];
}

/** Characters of decoded text per example sent for display. */
const MAX_PREVIEW_CHARS = 6000;

export async function previewSource(
  source: RecordSource,
  options: PrepareOptions,
  tokenizer: LoadedTokenizer,
  n = 3,
  signal?: AbortSignal,
): Promise<PreviewResult> {
  const opts = { ...DEFAULT_PREPARE_OPTIONS, ...options };
  checkOptions(opts);
  let template;
  try {
    template = resolveTemplate(opts.template, tokenizer.info, { source: opts.templateSource });
  } catch (e) {
    if (e instanceof TemplateError) throw new DataError('options', e.message);
    throw e;
  }
  const mapping = opts.mapping ?? (await detectMapping(source, signal));
  const issues = new IssueLog();
  const head = await source.head(Math.max(n, 1) * 4, issues, signal);
  const ctx = { tokenizer: tokenizer.tokenizer, info: tokenizer.info, template };
  const examples: PreviewExample[] = [];
  for (const rec of head) {
    if (examples.length >= n) break;
    const normal = normalizeRecord(rec.value, mapping);
    if (!normal.ok) {
      examples.push({ where: rec.where, ok: false, reason: normal.reason, ...(normal.detail ? { detail: normal.detail } : {}) });
      continue;
    }
    const t = tokenizeExample(normal.value, ctx, { maxSeqLength: opts.maxSeqLength, trainOnResponsesOnly: opts.trainOnResponsesOnly, overflow: opts.overflow });
    if (!t.ok) {
      examples.push({ where: rec.where, ok: false, reason: t.reason, ...(t.detail ? { detail: t.detail } : {}) });
      continue;
    }
    const { input_ids, labels_mask, truncated } = t.value.example;
    const { runs, clipped } = decodeRuns(tokenizer, input_ids, labels_mask);
    let trained = 0;
    for (const m of labels_mask) trained += m;
    examples.push({ where: rec.where, ok: true, runs, tokens: input_ids.length, trainedTokens: trained, truncated, fullLength: t.value.fullLength, clipped });
  }
  return {
    template: { id: template.id, endOfTurn: template.endOfTurn, warnings: template.warnings },
    tokenizer: { id: tokenizer.id, hasChatTemplate: tokenizer.info.chatTemplate !== null },
    mapping,
    examples,
  };
}

/** Consecutive tokens with the same mask, decoded together (whole characters, exact spaces). */
function decodeRuns(tok: LoadedTokenizer, ids: Int32Array, mask: Uint8Array): { runs: TextRun[]; clipped: boolean } {
  const runs: TextRun[] = [];
  let chars = 0;
  let start = 0;
  for (let i = 1; i <= ids.length; i++) {
    if (i < ids.length && mask[i] === mask[start]) continue;
    const text = tok.tokenizer.decode(Array.from(ids.subarray(start, i)), { skip_special_tokens: false, clean_up_tokenization_spaces: false });
    const room = MAX_PREVIEW_CHARS - chars;
    runs.push({ text: text.length > room ? text.slice(0, room) : text, trained: mask[start] === 1 });
    chars += text.length;
    if (chars >= MAX_PREVIEW_CHARS) return { runs, clipped: true };
    start = i;
  }
  return { runs, clipped: false };
}
