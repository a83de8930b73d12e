import type { PreparedManifest } from '../../data/index.ts';
import { formatBytes } from '../../util/format.ts';
import { formatInt } from '../format.ts';
import { IssueReport } from './IssueReport.tsx';
import { LengthHistogram } from './LengthHistogram.tsx';

/** Counts, a histogram of lengths and the skipped records of a prepared dataset. */
export function DatasetStats({ manifest }: { manifest: PreparedManifest }) {
  const { stats, options } = manifest;
  const t = stats.tokens;
  const rows: [string, string][] = [
    ['Records read', formatInt(stats.records)],
    ['Examples', formatInt(stats.examples)],
    ['Skipped', formatInt(stats.skipped.total)],
    ['Tokens', formatInt(t.tokens)],
    ['Trained tokens', `${formatInt(t.trainedTokens)} (${t.tokens ? ((100 * t.trainedTokens) / t.tokens).toFixed(1) : 0}%)`],
    ['Truncated', formatInt(t.truncated)],
    ['Length (min / mean / max)', `${formatInt(t.minLength)} / ${formatInt(Math.round(t.meanLength))} / ${formatInt(t.maxLength)}`],
    ['Training rows', `${formatInt(stats.train.rows)} × ${options.maxSeqLength}`],
    ['Validation rows', formatInt(stats.validation.rows)],
    ['Packing efficiency', `${(100 * stats.train.efficiency).toFixed(1)}%`],
    ['Stored', `${formatBytes(stats.bytes)} in ${manifest.shards.length} shards`],
  ];
  return (
    <div
      className="stats"
      data-testid="dataset-stats"
      data-records={stats.records}
      data-examples={stats.examples}
      data-skipped={stats.skipped.total}
      data-tokens={t.tokens}
      data-rows={stats.train.rows}
    >
      <table className="table stats-table">
        <tbody>
          {rows.map(([k, v]) => (
            <tr key={k}>
              <th scope="row">{k}</th>
              <td className="num">{v}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <LengthHistogram histogram={t.histogram} maxSeqLength={options.maxSeqLength} />
      <IssueReport issues={stats.skipped} />
    </div>
  );
}
