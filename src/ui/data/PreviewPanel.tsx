import type { PreviewExample } from '../../data/index.ts';
import { useDatasetStore } from '../../store/dataset.ts';
import { Notice } from '../widgets/Notice.tsx';
import { Section } from '../widgets/Section.tsx';
import { reasonText } from './labels.ts';

function Example({ ex }: { ex: PreviewExample }) {
  if (!ex.ok) {
    return (
      <li className="preview-example" data-testid="preview-example" data-ok="false">
        <span className="muted small">{ex.where}</span> — skipped: {reasonText(ex.reason)}
        {ex.detail ? ` (${ex.detail})` : ''}
      </li>
    );
  }
  return (
    <li className="preview-example" data-testid="preview-example" data-ok="true" data-tokens={ex.tokens} data-trained={ex.trainedTokens}>
      <div className="muted small">
        {ex.where} · {ex.tokens} tokens, {ex.trainedTokens} trained{ex.truncated ? ` · cut from ${ex.fullLength}` : ''}
      </div>
      <pre className="rendered">
        {ex.runs.map((r, i) =>
          r.trained ? (
            <mark key={i} data-testid="trained-span">
              {r.text}
            </mark>
          ) : (
            <span key={i}>{r.text}</span>
          ),
        )}
        {ex.clipped && <span className="muted">…</span>}
      </pre>
    </li>
  );
}

/** The first examples as the model sees them; highlighted text is what the loss is computed on. */
export function PreviewPanel() {
  const preview = useDatasetStore((s) => s.preview);
  if (preview.status === 'idle') return null;
  return (
    <Section title="Preview" testId="preview">
      {preview.status === 'error' && <Notice tone="error" testId="preview-error">{preview.error}</Notice>}
      {preview.status === 'loading' && !preview.value && <Notice>Rendering and tokenizing the first examples…</Notice>}
      {preview.value && (
        <>
          {preview.value.template.warnings.map((w) => (
            <Notice key={w} tone="warn">
              {w}
            </Notice>
          ))}
          <p className="muted small">
            <mark>Highlighted</mark> tokens are trained (the loss is computed on them); end of turn: <code>{preview.value.template.endOfTurn}</code>
          </p>
          <ol className="preview-list">
            {preview.value.examples.map((ex) => (
              <Example key={ex.where} ex={ex} />
            ))}
          </ol>
        </>
      )}
    </Section>
  );
}
