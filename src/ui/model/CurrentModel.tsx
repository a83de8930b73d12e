import { formatBytes } from '../../util/format.ts';
import { useModelStore } from '../../store/model.ts';
import type { ModelSummary } from '../../client/index.ts';
import { formatCount } from '../format.ts';
import { Notice } from '../widgets/Notice.tsx';
import { LoadProgressView } from './LoadProgressView.tsx';
import { planLinesWithBudget } from './memory-fit.ts';
import { ModelFit } from './ModelFit.tsx';

function quantizationText(m: ModelSummary): string {
  const dq = m.doubleQuant ? ', double-quantized absmax' : '';
  return m.quantization === 'bnb-4bit' ? `NF4 from the bnb-4bit checkpoint, uploaded as stored${dq}` : `NF4, quantized on the GPU while loading${dq}`;
}

function Summary({ model: m }: { model: ModelSummary }) {
  const unload = useModelStore((s) => s.unload);
  return (
    <div data-testid="model-summary" data-model-id={m.id}>
      <dl className="facts model-facts">
        <dt>Model</dt>
        <dd>
          {m.name} {m.name !== m.id && <code>{m.id}</code>}
          {m.revision && <span className="muted small"> @ {m.revision.slice(0, 10)}</span>}
        </dd>
        <dt>Architecture</dt>
        <dd data-testid="model-arch">{m.description}</dd>
        <dt>Quantization</dt>
        <dd>{quantizationText(m)}</dd>
        <dt>GPU memory</dt>
        <dd data-testid="model-gpu-bytes" data-bytes={m.gpuBytes}>
          {formatBytes(m.gpuBytes)} in {m.gpuBuffers} buffers: NF4 {formatBytes(m.nf4Bytes)}, other weights {formatBytes(m.denseBytes)}.{' '}
          {m.embeddingNote}
        </dd>
        <dt>GPU buffers</dt>
        <dd data-testid="model-gpu-buffers" data-bytes={m.gpuMemory.bytes} data-peak={m.gpuMemory.peak} data-load-peak={m.gpuMemory.loadPeak}>
          GPU buffers in use: {formatBytes(m.gpuMemory.bytes)} (peak {formatBytes(m.gpuMemory.peak)}) in {m.gpuMemory.buffers} buffers, tracked when
          the load finished.
        </dd>
        <dt>Tokenizer</dt>
        <dd>{m.tokenizerFiles.length ? m.tokenizerFiles.join(', ') : 'none'}</dd>
        <dt>Load</dt>
        <dd data-testid="model-load-time" data-seconds={m.loadSeconds} data-downloaded={m.downloadedBytes} data-cached={m.cachedBytes}>
          {m.loadSeconds.toFixed(1)} s · downloaded {formatBytes(m.downloadedBytes)}
          {m.cachedBytes > 0 && ` · ${formatBytes(m.cachedBytes)} from the browser cache`}
        </dd>
      </dl>
      {m.warnings.length > 0 && (
        <ul className="warnings" data-testid="model-warnings">
          {m.warnings.map((w) => (
            <li key={w}>{w}</li>
          ))}
        </ul>
      )}
      <ModelFit model={m} />
      <details data-testid="model-plan">
        <summary>Memory plan for the default run (seq 2048, batch 8, r=16, all linears)</summary>
        <ul className="plan-lines">
          {planLinesWithBudget(m.planLines).map((l) => (
            <li key={l}>{l}</li>
          ))}
        </ul>
        {m.planWarnings.some((w) => !m.planLines.includes(w)) && (
          <ul className="warnings">
            {m.planWarnings.filter((w) => !m.planLines.includes(w)).map((w) => (
              <li key={w}>{w}</li>
            ))}
          </ul>
        )}
      </details>
      <div className="row">
        <button type="button" className="secondary" data-testid="model-unload" onClick={() => void unload()}>
          Unload
        </button>
      </div>
    </div>
  );
}

/** The model the trainer worker holds: progress while loading, its summary, or why not. */
export function CurrentModel() {
  const status = useModelStore((s) => s.status);
  const model = useModelStore((s) => s.model);
  const error = useModelStore((s) => s.error);
  const errorName = useModelStore((s) => s.errorName);
  const note = useModelStore((s) => s.note);
  const loading = useModelStore((s) => s.loading);
  return (
    <div data-testid="current-model" data-status={status}>
      {status === 'loading' && (
        <>
          <Notice testId="model-status">Loading {loading === 'demo' ? 'the demo model' : loading}…</Notice>
          <LoadProgressView />
        </>
      )}
      {status === 'loaded' && model && (
        <>
          <Notice tone="ok" testId="model-status">
            Loaded: {model.name} ({formatCount(model.params)} parameters, {model.family})
          </Notice>
          <Summary model={model} />
        </>
      )}
      {status === 'error' && (
        <div data-testid="model-error" data-error-name={errorName ?? undefined}>
          <Notice tone="error" testId="model-status">
            {error}
          </Notice>
        </div>
      )}
      {status === 'none' && (
        <Notice tone="empty" testId="model-status">
          No model loaded
        </Notice>
      )}
      {note && status === 'none' && <p className="muted small">{note}</p>}
    </div>
  );
}
