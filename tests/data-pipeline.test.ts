import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { detectFormat } from '../src/data/formats.ts';
import { IssueLog } from '../src/data/issues.ts';
import { readJsonl } from '../src/data/jsonl.ts';
import { packExamples } from '../src/data/pack.ts';
import { tokenizeRecords } from '../src/data/pipeline.ts';
import { takeRecords } from '../src/data/source.ts';
import { TokenStatsAccumulator } from '../src/data/stats.ts';
import { resolveTemplate } from '../src/data/templates.ts';
import { bytesToStream } from '../src/data/text-stream.ts';
import { readTokenizerInfo } from '../src/data/tokenizer-info.ts';
import type { TokenizedExample } from '../src/data/types.ts';
import { loadLlama31Tokenizer } from './fixtures/data/llama-tokenizer.ts';

const fixture = readFileSync('tests/fixtures/data/finetome-sample.jsonl', 'utf8');
const extra = [
  '{"conversations": [}', // invalid JSON
  '{"conversations":[{"from":"human","value":"q"},{"from":"tool","value":"{}"},{"from":"gpt","value":"a"}],"source":"x","score":1}',
  '{"conversations":[],"source":"x","score":1}',
  '{"conversations":[{"from":"human","value":"only a question"}],"source":"x","score":1}',
].join('\n');
const FILE = new TextEncoder().encode(fixture + extra + '\n');

describe('FineTome-shaped JSONL -> ChatML tokens -> packed rows', () => {
  it('runs end to end with counted skips and consistent stats', async () => {
    const tok = await loadLlama31Tokenizer();
    const info = readTokenizerInfo(tok);
    const issues = new IssueLog();

    const head = await takeRecords(readJsonl(bytesToStream(FILE, 50), new IssueLog()), 100);
    const detection = detectFormat(head.map((r) => r.value));
    expect(detection.mapping?.kind).toBe('sharegpt');
    expect(detection.unknownRoles).toEqual(['tool']);

    const stats = new TokenStatsAccumulator(256, 8);
    const examples: TokenizedExample[] = [];
    for await (const { example: ex } of tokenizeRecords((sink) => readJsonl(bytesToStream(FILE, 50), sink), {
      tokenizer: tok,
      info,
      template: resolveTemplate('chatml', info),
      mapping: detection.mapping!,
      options: { maxSeqLength: 256, trainOnResponsesOnly: true, overflow: 'truncate' },
      issues,
      stats,
    })) {
      examples.push(ex);
    }

    expect(examples).toHaveLength(3);
    expect(issues.summary().byReason).toEqual({
      'invalid JSON': 1,
      'unknown role': 1,
      'empty conversation': 1,
      'no assistant turn': 1,
    });
    expect(issues.examples.map((e) => e.where)).toEqual(['line 4', 'line 5', 'line 6', 'line 7']);

    const s = stats.summary();
    const tokens = examples.reduce((n, e) => n + e.input_ids.length, 0);
    const trained = examples.reduce((n, e) => n + e.labels_mask.reduce((a, b) => a + b, 0), 0);
    expect(s).toMatchObject({ examples: 3, tokens, trainedTokens: trained, truncated: 0, misalignedBoundaries: 0 });
    expect(trained).toBeGreaterThan(10);
    expect(trained).toBeLessThan(tokens / 2); // prompts and templates are masked out
    expect(s.histogram.binWidth).toBe(32);
    expect(s.histogram.counts.reduce((a, b) => a + b, 0) + s.histogram.overflow).toBe(3);
    expect(s.minLength).toBe(Math.min(...examples.map((e) => e.input_ids.length)));
    expect(s.maxLength).toBe(Math.max(...examples.map((e) => e.input_ids.length)));

    const { rows, stats: pack } = packExamples(examples, { maxSeqLength: 256, packing: true, padId: info.padId, seed: 0 });
    expect(pack.rows).toBe(1); // three short conversations fit one 256-token row
    expect(pack.tokens).toBe(tokens);
    expect(pack.trainedTokens).toBe(trained); // first tokens are BOS, never trained: packing keeps the count
    expect(pack.efficiency).toBeCloseTo(tokens / 256, 12);
    expect(rows[0].docs.slice().sort()).toEqual([0, 1, 2]);
  });

  it('counts truncation and the histogram overflow bin', async () => {
    const tok = await loadLlama31Tokenizer();
    const info = readTokenizerInfo(tok);
    const stats = new TokenStatsAccumulator(24, 4);
    const issues = new IssueLog();
    const out: TokenizedExample[] = [];
    for await (const { example: ex } of tokenizeRecords((sink) => readJsonl(bytesToStream(new TextEncoder().encode(fixture)), sink), {
      tokenizer: tok,
      info,
      template: resolveTemplate('llama3', info),
      mapping: detectFormat([JSON.parse(fixture.split('\n')[0])]).mapping!,
      options: { maxSeqLength: 24, trainOnResponsesOnly: false, overflow: 'truncate' },
      issues,
      stats,
    })) {
      out.push(ex);
    }
    expect(out.every((e) => e.input_ids.length <= 24)).toBe(true);
    const s = stats.summary();
    expect(s.truncated).toBe(out.filter((e) => e.truncated).length);
    expect(s.truncated).toBeGreaterThanOrEqual(2); // the system-prompt and the Unicode conversations exceed 24
    expect(s.histogram.overflow).toBe(s.truncated);
    expect(s.maxLength).toBeGreaterThan(24); // lengths are reported before truncation
  });
});
