import type { InspectResult, SampleRecord } from '../../data/index.ts';
import { useDatasetStore } from '../../store/dataset.ts';
import { formatBytes } from '../../util/format.ts';
import { formatInt } from '../format.ts';
import { Notice } from '../widgets/Notice.tsx';
import { Section } from '../widgets/Section.tsx';
import { FORMAT_LABELS, FORMAT_SHORT, issueLine } from './labels.ts';
import { MappingEditor } from './MappingEditor.tsx';

const READ_AS: Record<string, string> = {
  jsonl: 'JSON Lines',
  'json-array': 'a JSON array',
  parquet: 'Parquet',
  'hub-parquet': 'Parquet over HTTP ranges',
  'hub-rows': 'the dataset viewer, 100 rows a request',
};

function SourceLine({ r }: { r: InspectResult }) {
  const s = r.source;
  const parts = [READ_AS[s.format] ?? s.format];
  if (s.totalRecords !== null) parts.push(`${formatInt(s.totalRecords)} rows`);
  if (s.totalBytes !== null) parts.push(formatBytes(s.totalBytes));
  return (
    <p data-testid="source-summary" data-format={s.format}>
      <strong>{s.label}</strong> — {parts.join(' · ')}
      {s.note && <span className="muted small"> ({s.note})</span>}
    </p>
  );
}

function Sample({ rec }: { rec: SampleRecord }) {
  return (
    <li className="sample" data-testid="sample-record">
      <span className="muted small">{rec.where}</span>{' '}
      {rec.example ? (
        'messages' in rec.example ? (
          rec.example.messages.map((m, i) => (
            <span key={i} className={`turn turn-${m.role}`}>
              <b>{m.role}:</b> {m.content}
            </span>
          ))
        ) : (
          <span className="turn">{rec.example.text}</span>
        )
      ) : (
        <>
          {rec.rejected && <span className="inline-msg inline-error">{rec.rejected.reason}{rec.rejected.detail ? ` (${rec.rejected.detail})` : ''}: </span>}
          <code className="json">{rec.json}</code>
        </>
      )}
    </li>
  );
}

/** What the worker found in the source, and the mapping to use. */
export function FormatPanel() {
  const inspection = useDatasetStore((s) => s.inspection);
  const mapping = useDatasetStore((s) => s.mapping);
  const edited = useDatasetStore((s) => s.mappingEdited);
  if (inspection.status === 'idle') return null;
  if (inspection.status === 'loading') {
    return (
      <Section title="Format">
        <Notice testId="inspect-status">Reading the first records…</Notice>
      </Section>
    );
  }
  if (inspection.status === 'error' || !inspection.value) {
    return (
      <Section title="Format">
        <Notice tone="error" testId="inspect-error">
          {inspection.error}
        </Notice>
      </Section>
    );
  }
  const r = inspection.value;
  const d = r.detection;
  return (
    <Section title="Format" testId="format-panel">
      <SourceLine r={r} />
      {mapping ? (
        <p data-testid="detected-format" data-kind={mapping.kind} data-edited={edited}>
          {edited ? 'Your mapping: ' : 'Detected: '}
          <strong>{FORMAT_SHORT[mapping.kind]}</strong> — {FORMAT_LABELS[mapping.kind]}
          {!edited && ` · ${d.matched} of ${d.sampled} sampled records fit`}
        </p>
      ) : (
        <Notice tone="error" testId="format-message">
          {r.message}
        </Notice>
      )}
      {mapping && d.unknownRoles.length > 0 && !edited && (
        <Notice tone="warn">Unknown speakers {d.unknownRoles.map((x) => JSON.stringify(x)).join(', ')}: records with them are skipped unless you map them below.</Notice>
      )}
      {r.issues.total > 0 && (
        <Notice tone="warn" testId="inspect-issues">
          {r.issues.total} of the first {r.looked} records would be skipped: {r.issues.examples.slice(0, 3).map(issueLine).join('; ')}
        </Notice>
      )}
      <p className="muted small">Columns: {r.columns.length > 0 ? r.columns.join(', ') : 'none found'}</p>
      <MappingEditor inspection={r} />
      {r.sample.length > 0 && (
        <details className="samples" open>
          <summary>First records</summary>
          <ul className="sample-list">
            {r.sample.map((rec) => (
              <Sample key={rec.where} rec={rec} />
            ))}
          </ul>
        </details>
      )}
    </Section>
  );
}
