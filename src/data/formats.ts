// Dataset formats: detect ShareGPT / OpenAI messages / Alpaca / plain text from sample records,
// describe the result as a mapping a person can edit, and normalise records through it.
// A record that does not fit is rejected with a reason (counted by the caller), never thrown.

import type { DataRecord, Example, Message, Outcome, Role } from './types.ts';

export type FormatKind = 'sharegpt' | 'openai' | 'alpaca' | 'text';

/** Source role value -> normalised role; `null` drops messages with that role. */
export type RoleMap = Record<string, Role | null>;

export interface ConversationMapping {
  kind: 'sharegpt' | 'openai';
  /** Column holding the list of messages, e.g. "conversations" or "messages". */
  column: string;
  /** Field of each message naming the speaker, e.g. "from" or "role". */
  roleField: string;
  /** Field of each message holding the text, e.g. "value" or "content". */
  contentField: string;
  roles: RoleMap;
}

export interface AlpacaMapping {
  kind: 'alpaca';
  instruction: string;
  /** Optional extra input appended to the instruction after a blank line. */
  input: string | null;
  output: string;
  /** Optional per-record system prompt column. */
  system: string | null;
}

export interface TextMapping {
  kind: 'text';
  column: string;
}

export type FormatMapping = ConversationMapping | AlpacaMapping | TextMapping;

export const DEFAULT_ROLE_MAP: Readonly<RoleMap> = {
  system: 'system',
  human: 'user',
  user: 'user',
  gpt: 'assistant',
  assistant: 'assistant',
  model: 'assistant',
  bot: 'assistant',
  chatgpt: 'assistant',
};

const ROLE_FIELDS = ['from', 'role', 'speaker', 'author'];
const CONTENT_FIELDS = ['value', 'content', 'text', 'message'];
const ALPACA_OUTPUT = ['output', 'response'];
const ALPACA_INPUT = ['input', 'context'];

export interface FormatCandidate {
  mapping: FormatMapping;
  /**
   * How many sampled records fit this mapping's shape: they normalise, or fail only on a role
   * value the role map does not know yet (listed in `unknownRoles`, for the person to map).
   */
  matched: number;
}

export interface FormatDetection {
  /** The best mapping, or null when no known format fits any sampled record. */
  mapping: FormatMapping | null;
  sampled: number;
  matched: number;
  /** Every plausible mapping, best first (the first is `mapping`). */
  candidates: FormatCandidate[];
  /** Role values seen in the sample that the chosen mapping does not map (records with them are rejected). */
  unknownRoles: string[];
  /** Column names seen in the sample, in first-seen order. */
  columns: string[];
  /** Set when `mapping` is null. */
  reason?: string;
}

/** Detection from the first records of a file (50-200 is plenty). */
export function detectFormat(records: readonly DataRecord[]): FormatDetection {
  const columns = columnNames(records);
  const mappings: FormatMapping[] = [...conversationMappings(records, columns)];
  const alpaca = alpacaMapping(columns);
  if (alpaca) mappings.push(alpaca);
  if (columns.includes('text')) mappings.push({ kind: 'text', column: 'text' });

  const candidates = mappings
    .map((mapping, order) => ({ mapping, order, matched: records.filter((r) => fits(r, mapping)).length }))
    .filter((c) => c.matched > 0)
    .sort((a, b) => b.matched - a.matched || a.order - b.order)
    .map(({ mapping, matched }) => ({ mapping, matched }));

  const best = candidates[0];
  if (!best) {
    return {
      mapping: null,
      sampled: records.length,
      matched: 0,
      candidates: [],
      unknownRoles: [],
      columns,
      reason:
        records.length === 0
          ? 'no records to look at'
          : `no known format fits: expected "conversations" (ShareGPT), "messages" (OpenAI), ` +
            `"instruction"/"output" (Alpaca) or "text"; columns are ${columns.map((c) => JSON.stringify(c)).join(', ') || 'none'}`,
    };
  }
  return {
    mapping: best.mapping,
    sampled: records.length,
    matched: best.matched,
    candidates,
    unknownRoles: best.mapping.kind === 'sharegpt' || best.mapping.kind === 'openai' ? unknownRoles(records, best.mapping) : [],
    columns,
  };
}

function fits(record: DataRecord, mapping: FormatMapping): boolean {
  const r = normalizeRecord(record, mapping);
  return r.ok || r.reason === 'unknown role';
}

/** Applies a (detected or hand-edited) mapping to one record. */
export function normalizeRecord(record: DataRecord, mapping: FormatMapping): Outcome<Example> {
  switch (mapping.kind) {
    case 'sharegpt':
    case 'openai':
      return normalizeConversation(record, mapping);
    case 'alpaca':
      return normalizeAlpaca(record, mapping);
    case 'text':
      return normalizeText(record, mapping);
  }
}

function normalizeConversation(record: DataRecord, m: ConversationMapping): Outcome<Example> {
  let list = record[m.column];
  if (list === undefined || list === null) return reject('missing field', `no "${m.column}"`);
  if (typeof list === 'string' && list.trimStart().startsWith('[')) {
    try {
      list = JSON.parse(list); // some datasets store the conversation as a JSON string
    } catch {
      return reject('wrong type', `"${m.column}" is a string that is not a JSON list`);
    }
  }
  if (!Array.isArray(list)) return reject('wrong type', `"${m.column}" is ${typeName(list)}, expected a list`);
  if (list.length === 0) return reject('empty conversation', `"${m.column}" is empty`);
  const messages: Message[] = [];
  for (let i = 0; i < list.length; i++) {
    const item: unknown = list[i];
    if (!isObject(item)) return reject('wrong type', `message ${i} is ${typeName(item)}, expected an object`);
    const rawRole = item[m.roleField];
    if (rawRole === undefined || rawRole === null) return reject('missing field', `message ${i} has no "${m.roleField}"`);
    if (typeof rawRole !== 'string') return reject('wrong type', `message ${i} "${m.roleField}" is ${typeName(rawRole)}`);
    const role = lookupRole(m.roles, rawRole);
    if (role === undefined) return reject('unknown role', `message ${i} role ${JSON.stringify(rawRole)}`);
    if (role === null) continue;
    const content = contentText(item[m.contentField]);
    if (content === undefined) {
      const v = item[m.contentField];
      return v === undefined || v === null
        ? reject('missing field', `message ${i} has no "${m.contentField}"`)
        : reject('wrong type', `message ${i} "${m.contentField}" is ${typeName(v)}, expected text`);
    }
    messages.push({ role, content });
  }
  if (messages.length === 0) return reject('empty conversation', 'every message was dropped by the role map');
  if (!messages.some((msg) => msg.role === 'assistant')) return reject('no assistant turn', `${messages.length} messages, none from the assistant`);
  return { ok: true, value: { messages } };
}

function normalizeAlpaca(record: DataRecord, m: AlpacaMapping): Outcome<Example> {
  const instruction = record[m.instruction];
  const output = record[m.output];
  if (instruction === undefined || instruction === null) return reject('missing field', `no "${m.instruction}"`);
  if (output === undefined || output === null) return reject('missing field', `no "${m.output}"`);
  if (typeof instruction !== 'string') return reject('wrong type', `"${m.instruction}" is ${typeName(instruction)}`);
  if (typeof output !== 'string') return reject('wrong type', `"${m.output}" is ${typeName(output)}`);
  if (instruction.trim().length === 0) return reject('empty text', `"${m.instruction}" is empty`);
  const input = m.input === null ? undefined : record[m.input];
  if (input !== undefined && input !== null && typeof input !== 'string') {
    return reject('wrong type', `"${m.input}" is ${typeName(input)}`);
  }
  const system = m.system === null ? undefined : record[m.system];
  if (system !== undefined && system !== null && typeof system !== 'string') {
    return reject('wrong type', `"${m.system}" is ${typeName(system)}`);
  }
  const messages: Message[] = [];
  if (typeof system === 'string' && system.trim().length > 0) messages.push({ role: 'system', content: system });
  const user = typeof input === 'string' && input.trim().length > 0 ? `${instruction}\n\n${input}` : instruction;
  messages.push({ role: 'user', content: user }, { role: 'assistant', content: output });
  return { ok: true, value: { messages } };
}

function normalizeText(record: DataRecord, m: TextMapping): Outcome<Example> {
  const text = record[m.column];
  if (text === undefined || text === null) return reject('missing field', `no "${m.column}"`);
  if (typeof text !== 'string') return reject('wrong type', `"${m.column}" is ${typeName(text)}`);
  if (text.trim().length === 0) return reject('empty text', `"${m.column}" is empty`);
  return { ok: true, value: { text } };
}

function lookupRole(roles: RoleMap, raw: string): Role | null | undefined {
  if (Object.hasOwn(roles, raw)) return roles[raw];
  const lower = raw.trim().toLowerCase();
  if (Object.hasOwn(roles, lower)) return roles[lower];
  return undefined;
}

/** A string, or OpenAI-style content parts `[{type:'text', text}]` joined; undefined otherwise. */
function contentText(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (Array.isArray(v) && v.length > 0) {
    let out = '';
    for (const part of v) {
      if (!isObject(part) || part.type !== 'text' || typeof part.text !== 'string') return undefined;
      out += part.text;
    }
    return out;
  }
  return undefined;
}

function conversationMappings(records: readonly DataRecord[], columns: string[]): ConversationMapping[] {
  const out: ConversationMapping[] = [];
  for (const column of columns) {
    const seen = new Set<string>();
    for (const r of records) {
      const first = firstMessage(r[column]);
      if (!first) continue;
      const roleField = ROLE_FIELDS.find((f) => typeof first[f] === 'string');
      const contentField = CONTENT_FIELDS.find((f) => f in first);
      if (!roleField || !contentField) continue;
      const key = `${roleField}\u0000${contentField}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const kind = roleField === 'from' || contentField === 'value' ? 'sharegpt' : 'openai';
      out.push({ kind, column, roleField, contentField, roles: { ...DEFAULT_ROLE_MAP } });
    }
  }
  // Conventional column names first, so they win ties.
  const rank = (c: string) => (c === 'conversations' || c === 'messages' ? 0 : 1);
  return out.sort((a, b) => rank(a.column) - rank(b.column));
}

function firstMessage(v: unknown): Record<string, unknown> | null {
  let list = v;
  if (typeof list === 'string' && list.trimStart().startsWith('[')) {
    try {
      list = JSON.parse(list);
    } catch {
      return null;
    }
  }
  if (!Array.isArray(list) || list.length === 0 || !isObject(list[0])) return null;
  return list[0];
}

function alpacaMapping(columns: string[]): AlpacaMapping | null {
  if (!columns.includes('instruction')) return null;
  const output = ALPACA_OUTPUT.find((c) => columns.includes(c));
  if (!output) return null;
  return {
    kind: 'alpaca',
    instruction: 'instruction',
    input: ALPACA_INPUT.find((c) => columns.includes(c)) ?? null,
    output,
    system: columns.includes('system') ? 'system' : null,
  };
}

function unknownRoles(records: readonly DataRecord[], m: ConversationMapping): string[] {
  const unknown = new Set<string>();
  for (const r of records) {
    let list = r[m.column];
    if (typeof list === 'string') {
      try {
        list = JSON.parse(list);
      } catch {
        continue;
      }
    }
    if (!Array.isArray(list)) continue;
    for (const item of list) {
      if (!isObject(item)) continue;
      const role = item[m.roleField];
      if (typeof role === 'string' && lookupRole(m.roles, role) === undefined) unknown.add(role);
    }
  }
  return [...unknown];
}

function columnNames(records: readonly DataRecord[]): string[] {
  const seen = new Set<string>();
  for (const r of records) for (const k of Object.keys(r)) seen.add(k);
  return [...seen];
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  return `a ${typeof v}`;
}

function reject(reason: string, detail: string): Outcome<never> {
  return { ok: false, reason, detail };
}
