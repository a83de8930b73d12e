// What the Data tab shows before preparing: the detected format, the columns, and the first
// records as they normalise under the mapping in use (detected, or the person's override).

import { noFormatMessage } from './errors.ts';
import { detectFormat, normalizeRecord } from './formats.ts';
import type { FormatDetection, FormatMapping } from './formats.ts';
import { IssueLog, shorten } from './issues.ts';
import type { IssueSummary } from './issues.ts';
import { DETECT_RECORDS } from './prepare.ts';
import type { RecordSource, SourceInfo } from './record-source.ts';
import type { DataRecord, Example } from './types.ts';

export interface SampleRecord {
  where: string;
  /** The record as JSON, shortened for display. */
  json: string;
  /** How it normalises (texts shortened for display), or why it does not. */
  example?: Example;
  rejected?: { reason: string; detail?: string };
}

export interface InspectResult {
  source: SourceInfo;
  detection: FormatDetection;
  /** The mapping the sample was normalised with: the override, else the detected one. */
  mapping: FormatMapping | null;
  /** Column names: from the records, else from the Parquet schema. */
  columns: string[];
  sample: SampleRecord[];
  /** Distinct speaker values under a conversation mapping (for the role editor). */
  roleValues: string[];
  /** Records looked at, and the problems among them. */
  looked: number;
  issues: IssueSummary;
  /** For people, when no format fits. */
  message: string | null;
}

export async function inspectSource(
  source: RecordSource,
  options: { mapping?: FormatMapping | null; sample?: number; signal?: AbortSignal } = {},
): Promise<InspectResult> {
  const issues = new IssueLog(10);
  const head = await source.head(DETECT_RECORDS, issues, options.signal);
  const values = head.map((r) => r.value);
  const detection = detectFormat(values);
  const mapping = options.mapping ?? detection.mapping;
  const columns = detection.columns.length > 0 ? detection.columns : (source.info.columns ?? []);
  const sample = head.slice(0, options.sample ?? 5).map((r): SampleRecord => {
    const out: SampleRecord = { where: r.where, json: shorten(safeJson(r.value), 600) };
    if (mapping) {
      const n = normalizeRecord(r.value, mapping);
      if (n.ok) out.example = shortenExample(n.value);
      else out.rejected = { reason: n.reason, ...(n.detail ? { detail: n.detail } : {}) };
    }
    return out;
  });
  let message: string | null = null;
  if (!mapping) message = head.length === 0 ? emptyMessage(source, issues.summary()) : noFormatMessage(columns);
  return {
    source: source.info,
    detection,
    mapping,
    columns,
    sample,
    roleValues: mapping && (mapping.kind === 'sharegpt' || mapping.kind === 'openai') ? roleValues(values, mapping.column, mapping.roleField) : [],
    looked: head.length + issues.total,
    issues: issues.summary(),
    message,
  };
}

function emptyMessage(source: RecordSource, s: IssueSummary): string {
  if (s.total === 0) return `${source.info.label} has no records.`;
  const first = s.examples[0];
  return `No readable records at the start of ${source.info.label}: ${s.total} skipped, e.g. ${first.where}: ${first.reason}${first.detail ? ` (${first.detail})` : ''}.`;
}

function roleValues(records: readonly DataRecord[], column: string, roleField: string): string[] {
  const seen = new Set<string>();
  for (const r of records) {
    let list = r[column];
    if (typeof list === 'string') {
      try {
        list = JSON.parse(list);
      } catch {
        continue;
      }
    }
    if (!Array.isArray(list)) continue;
    for (const m of list) {
      const role = (m as Record<string, unknown> | null)?.[roleField];
      if (typeof role === 'string') seen.add(role);
    }
  }
  return [...seen];
}

function shortenExample(e: Example): Example {
  if ('text' in e) return { text: shorten(e.text, 400) };
  return { messages: e.messages.map((m) => ({ role: m.role, content: shorten(m.content, 400) })) };
}

/** JSON.stringify that survives BigInt (Parquet int64) and byte arrays. */
export function safeJson(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x instanceof Uint8Array ? `<${x.length} bytes>` : x)) ?? '';
}
