import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DEFAULT_ROLE_MAP, detectFormat, normalizeRecord } from '../src/data/formats.ts';
import type { ConversationMapping, FormatMapping } from '../src/data/formats.ts';
import type { DataRecord } from '../src/data/types.ts';

const fineTome: DataRecord[] = readFileSync('tests/fixtures/data/finetome-sample.jsonl', 'utf8')
  .split('\n')
  .filter((l) => l.trim())
  .map((l) => JSON.parse(l) as DataRecord);

describe('detectFormat', () => {
  it('detects FineTome-100k (ShareGPT conversations + source + score)', () => {
    const d = detectFormat(fineTome);
    expect(d.mapping).toEqual({
      kind: 'sharegpt',
      column: 'conversations',
      roleField: 'from',
      contentField: 'value',
      roles: DEFAULT_ROLE_MAP,
    });
    expect(d.sampled).toBe(3);
    expect(d.matched).toBe(3);
    expect(d.columns).toEqual(['conversations', 'source', 'score']);
    expect(d.unknownRoles).toEqual([]);
    const n = normalizeRecord(fineTome[1], d.mapping!);
    expect(n).toEqual({
      ok: true,
      value: {
        messages: [
          { role: 'system', content: 'You are a helpful assistant.' },
          { role: 'user', content: 'Name a prime number.' },
          { role: 'assistant', content: '7 is prime: its only divisors are 1 and 7.' },
          { role: 'user', content: 'And an even one?' },
          { role: 'assistant', content: '2 is the only even prime.' },
        ],
      },
    });
  });

  it('detects OpenAI messages, including content parts', () => {
    const recs = [
      { messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' }] },
      { messages: [{ role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }] }, { role: 'assistant', content: 'c' }] },
    ];
    const d = detectFormat(recs);
    expect(d.mapping).toMatchObject({ kind: 'openai', column: 'messages', roleField: 'role', contentField: 'content' });
    expect(normalizeRecord(recs[1], d.mapping!)).toEqual({
      ok: true,
      value: { messages: [{ role: 'user', content: 'ab' }, { role: 'assistant', content: 'c' }] },
    });
  });

  it('detects Alpaca (with optional input and system) and plain text', () => {
    const alpaca = [
      { instruction: 'Add', input: '2 and 3', output: '5' },
      { instruction: 'Greet', input: '', output: 'Hello', system: 'Be brief.' },
    ];
    const d = detectFormat(alpaca);
    expect(d.mapping).toEqual({ kind: 'alpaca', instruction: 'instruction', input: 'input', output: 'output', system: 'system' });
    expect(normalizeRecord(alpaca[0], d.mapping!)).toEqual({
      ok: true,
      value: { messages: [{ role: 'user', content: 'Add\n\n2 and 3' }, { role: 'assistant', content: '5' }] },
    });
    expect(normalizeRecord(alpaca[1], d.mapping!)).toEqual({
      ok: true,
      value: {
        messages: [
          { role: 'system', content: 'Be brief.' },
          { role: 'user', content: 'Greet' },
          { role: 'assistant', content: 'Hello' },
        ],
      },
    });
    // Dolly-style column names.
    expect(detectFormat([{ instruction: 'a', context: 'b', response: 'c' }]).mapping).toEqual({
      kind: 'alpaca',
      instruction: 'instruction',
      input: 'context',
      output: 'response',
      system: null,
    });
    const text = detectFormat([{ text: 'Once upon a time', meta: 1 }]);
    expect(text.mapping).toEqual({ kind: 'text', column: 'text' });
    expect(normalizeRecord({ text: 'Once' }, text.mapping!)).toEqual({ ok: true, value: { text: 'Once' } });
  });

  it('finds conversations under other column and field names', () => {
    const recs = [{ dialog: [{ speaker: 'human', text: 'q' }, { speaker: 'bot', text: 'a' }] }];
    const d = detectFormat(recs);
    expect(d.mapping).toMatchObject({ kind: 'openai', column: 'dialog', roleField: 'speaker', contentField: 'text' });
    expect(normalizeRecord(recs[0], d.mapping!).ok).toBe(true);
    // ShareGPT fields under "messages", and a conversation stored as a JSON string.
    const s = { messages: JSON.stringify([{ from: 'human', value: 'q' }, { from: 'gpt', value: 'a' }]) };
    expect(detectFormat([s]).mapping).toMatchObject({ kind: 'sharegpt', column: 'messages', roleField: 'from' });
  });

  it('prefers a conversation over a text column, and the majority over the first record', () => {
    const both = [{ conversations: [{ from: 'human', value: 'q' }, { from: 'gpt', value: 'a' }], text: 'q a' }];
    const d = detectFormat(both);
    expect(d.mapping?.kind).toBe('sharegpt');
    expect(d.candidates.map((c) => c.mapping.kind)).toEqual(['sharegpt', 'text']);

    const mostlyText = [{ text: 'a' }, { text: 'b' }, { text: 'c', messages: [{ role: 'user', content: 'x' }, { role: 'assistant', content: 'y' }] }];
    const m = detectFormat(mostlyText);
    expect(m.mapping).toEqual({ kind: 'text', column: 'text' });
    expect(m.matched).toBe(3);
    expect(m.candidates.map((c) => [c.mapping.kind, c.matched])).toEqual([
      ['text', 3],
      ['openai', 1],
    ]);
  });

  it('detects the shape despite unknown role values, and lists them for the person to map', () => {
    const recs = [
      { conversations: [{ from: 'human', value: 'q' }, { from: 'tool', value: '{}' }, { from: 'gpt', value: 'a' }] },
      { conversations: [{ from: 'Narrator', value: 'n' }, { from: 'gpt', value: 'a' }] },
      { conversations: [{ from: 'human', value: 'q' }, { from: 'gpt', value: 'a' }] },
    ];
    const d = detectFormat(recs);
    expect(d.mapping).toMatchObject({ kind: 'sharegpt', column: 'conversations' });
    expect(d.matched).toBe(3);
    expect(d.unknownRoles).toEqual(['tool', 'Narrator']);
    expect(normalizeRecord(recs[0], d.mapping!)).toMatchObject({ ok: false, reason: 'unknown role' });
    expect(normalizeRecord(recs[2], d.mapping!).ok).toBe(true);
  });

  it('returns no mapping with a reason for unknown shapes and empty samples', () => {
    const d = detectFormat([{ question: 'a', answer: 'b' }]);
    expect(d.mapping).toBeNull();
    expect(d.reason).toContain('"question", "answer"');
    expect(detectFormat([]).reason).toBe('no records to look at');
  });
});

describe('normalizeRecord rejects invalid records with a reason', () => {
  const sharegpt: ConversationMapping = {
    kind: 'sharegpt',
    column: 'conversations',
    roleField: 'from',
    contentField: 'value',
    roles: { ...DEFAULT_ROLE_MAP },
  };
  const cases: [string, DataRecord, FormatMapping, string][] = [
    ['missing column', { other: 1 }, sharegpt, 'missing field'],
    ['not a list', { conversations: 'hello' }, sharegpt, 'wrong type'],
    ['bad JSON string', { conversations: '[{"from"' }, sharegpt, 'wrong type'],
    ['empty', { conversations: [] }, sharegpt, 'empty conversation'],
    ['message not object', { conversations: ['hi'] }, sharegpt, 'wrong type'],
    ['no role', { conversations: [{ value: 'x' }] }, sharegpt, 'missing field'],
    ['role not string', { conversations: [{ from: 1, value: 'x' }] }, sharegpt, 'wrong type'],
    ['unknown role', { conversations: [{ from: 'narrator', value: 'x' }] }, sharegpt, 'unknown role'],
    ['no content', { conversations: [{ from: 'human' }] }, sharegpt, 'missing field'],
    ['content number', { conversations: [{ from: 'gpt', value: 3 }] }, sharegpt, 'wrong type'],
    ['no assistant', { conversations: [{ from: 'human', value: 'q' }] }, sharegpt, 'no assistant turn'],
    ['alpaca no output', { instruction: 'a' }, { kind: 'alpaca', instruction: 'instruction', input: null, output: 'output', system: null }, 'missing field'],
    ['alpaca output number', { instruction: 'a', output: 1 }, { kind: 'alpaca', instruction: 'instruction', input: null, output: 'output', system: null }, 'wrong type'],
    ['alpaca empty instruction', { instruction: ' ', output: 'x' }, { kind: 'alpaca', instruction: 'instruction', input: null, output: 'output', system: null }, 'empty text'],
    ['text empty', { text: '  ' }, { kind: 'text', column: 'text' }, 'empty text'],
    ['text not string', { text: ['a'] }, { kind: 'text', column: 'text' }, 'wrong type'],
  ];
  for (const [name, rec, mapping, reason] of cases) {
    it(name, () => {
      const r = normalizeRecord(rec, mapping);
      expect(r.ok).toBe(false);
      if (!r.ok) {
        expect(r.reason).toBe(reason);
        expect(r.detail).toBeTruthy();
      }
    });
  }
});

describe('mapping overrides', () => {
  it('maps custom role values and drops roles mapped to null', () => {
    const rec = {
      turns: [
        { who: 'Customer', says: 'Where is my parcel?' },
        { who: 'note', says: 'internal' },
        { who: 'Agent', says: 'On its way.' },
      ],
    };
    const mapping: ConversationMapping = {
      kind: 'sharegpt',
      column: 'turns',
      roleField: 'who',
      contentField: 'says',
      roles: { Customer: 'user', Agent: 'assistant', note: null },
    };
    expect(normalizeRecord(rec, mapping)).toEqual({
      ok: true,
      value: {
        messages: [
          { role: 'user', content: 'Where is my parcel?' },
          { role: 'assistant', content: 'On its way.' },
        ],
      },
    });
    // Without the override the record is rejected, not thrown.
    const without = { ...mapping, roles: { ...DEFAULT_ROLE_MAP } };
    expect(normalizeRecord(rec, without)).toMatchObject({ ok: false, reason: 'unknown role' });
  });

  it('can remap a default role (e.g. treat "system" turns as user turns)', () => {
    const rec = fineTome[1];
    const d = detectFormat([rec]);
    const m = { ...(d.mapping as ConversationMapping), roles: { ...DEFAULT_ROLE_MAP, system: 'user' as const } };
    const r = normalizeRecord(rec, m);
    expect(r.ok && 'messages' in r.value && r.value.messages[0]).toEqual({ role: 'user', content: 'You are a helpful assistant.' });
  });

  it('role lookup falls back to lower case', () => {
    const rec = { conversations: [{ from: 'Human', value: 'q' }, { from: 'GPT', value: 'a' }] };
    expect(normalizeRecord(rec, detectFormat([rec]).mapping!).ok).toBe(true);
  });
});
