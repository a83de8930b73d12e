import type { FitVerdict } from './memory-fit.ts';

/** Whether a model's default run fits the GPU memory budget; nothing when it fits, unless asked. */
export function FitNotice({ verdict, testId = 'fit-verdict', showFits = false }: { verdict: FitVerdict; testId?: string; showFits?: boolean }) {
  if (verdict.level === 'fits' && !showFits) return null;
  const tone = verdict.level === 'over' ? 'error' : verdict.level === 'tight' ? 'warn' : 'ok';
  return (
    <div
      className={`notice notice-${tone} fit-notice`}
      data-testid={testId}
      data-level={verdict.level}
      data-need-bytes={verdict.needBytes}
      data-budget-bytes={verdict.budgetBytes}
    >
      <p className="fit-headline">{verdict.headline}</p>
      {verdict.changes.length > 0 && (
        <>
          <p className="fit-lead">{verdict.level === 'over' ? 'What to change (any one will do):' : 'For more room:'}</p>
          <ul className="fit-changes">
            {verdict.changes.map((c) => (
              <li key={c}>{c}</li>
            ))}
          </ul>
        </>
      )}
    </div>
  );
}
