import type { IssueSummary } from '../../data/index.ts';
import { formatInt } from '../format.ts';
import { issueLine, reasonText } from './labels.ts';

/** Skipped records: how many for each reason, and the first few with where they are. */
export function IssueReport({ issues }: { issues: IssueSummary }) {
  if (issues.total === 0) return <p className="muted small" data-testid="issue-report" data-total="0">No record was skipped.</p>;
  return (
    <div className="issues" data-testid="issue-report" data-total={issues.total}>
      <p>
        <strong>{formatInt(issues.total)} skipped</strong>:{' '}
        {Object.entries(issues.byReason)
          .map(([r, n]) => `${reasonText(r)} ${formatInt(n)}`)
          .join(' · ')}
      </p>
      <ul className="issue-list">
        {issues.examples.map((e, i) => (
          <li key={i} data-testid="issue-example">
            {issueLine(e)}
          </li>
        ))}
      </ul>
      {issues.total > issues.examples.length && <p className="muted small">The first {issues.examples.length} are listed.</p>}
    </div>
  );
}
