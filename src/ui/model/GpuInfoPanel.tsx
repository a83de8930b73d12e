import { useMemo } from 'react';
import { formatBytes } from '../../util/format.ts';
import { useGpuStore } from '../../store/gpu.ts';
import { Notice } from '../widgets/Notice.tsx';
import type { GpuInfo } from '../../client/index.ts';
import { GpuMemoryField } from './GpuMemoryField.tsx';
import { f16Advice } from './f16-advice.ts';

const SIZE_LIMITS = new Set(['maxBufferSize', 'maxStorageBufferBindingSize', 'maxComputeWorkgroupStorageSize']);

function GpuDetails({ info }: { info: GpuInfo }) {
  const yes = (b: boolean) => (b ? 'yes' : 'no');
  return (
    <details className="gpu-details">
      <summary>Adapter, limits and features</summary>
      <dl className="facts">
        <dt>Vendor</dt>
        <dd>{info.vendor || '—'}</dd>
        <dt>Architecture</dt>
        <dd>{info.architecture || '—'}</dd>
        <dt>Description</dt>
        <dd>{info.description || '—'}</dd>
        <dt>Numeric mode</dt>
        <dd>{info.f16 ? 'f16 storage, f32 accumulation' : 'f32 throughout'}</dd>
        <dt>Subgroups</dt>
        <dd>{yes(info.subgroups)}</dd>
        <dt>Timestamp queries</dt>
        <dd>{yes(info.timestamps)}</dd>
        <dt>Subgroup matrices</dt>
        <dd>{yes(info.subgroupMatrix)}</dd>
      </dl>
      <h3>Limits</h3>
      <dl className="facts" data-testid="gpu-limits">
        {Object.entries(info.limits).map(([name, value]) => (
          <div key={name} className="fact">
            <dt>
              <code>{name}</code>
            </dt>
            <dd>{SIZE_LIMITS.has(name) ? `${formatBytes(value)} (${value})` : value}</dd>
          </div>
        ))}
      </dl>
      <h3>Features</h3>
      {info.features.length ? (
        <ul className="features" data-testid="gpu-features">
          {info.features.map((f) => (
            <li key={f}>
              <code>{f}</code>
            </li>
          ))}
        </ul>
      ) : (
        <p className="muted">No optional features.</p>
      )}
    </details>
  );
}

export function GpuInfoPanel() {
  const status = useGpuStore((s) => s.status);
  const summary = useGpuStore((s) => s.summary);
  const info = useGpuStore((s) => s.info);
  const error = useGpuStore((s) => s.error);
  const lost = useGpuStore((s) => s.lost);
  // Plans the 8B preset twice: once per adapter, not per render.
  const advice = useMemo(() => (info ? f16Advice(info) : null), [info]);

  return (
    <div data-testid="gpu-info" data-status={status}>
      {(status === 'idle' || status === 'starting') && <Notice>Starting the GPU in the trainer worker…</Notice>}
      {summary && status !== 'starting' && (
        <p className="gpu-line" data-testid="gpu-summary">
          {summary}
        </p>
      )}
      {status === 'lost' && (
        <Notice tone="warn">
          Device lost ({lost?.reason || 'unknown reason'}). Restart the trainer worker to get a new one.
        </Notice>
      )}
      {status === 'error' && <Notice tone="error">{error}</Notice>}
      {advice && status !== 'starting' && (
        <Notice tone="warn" testId="gpu-f16-advice">
          {advice}
        </Notice>
      )}
      {status !== 'unsupported' && <GpuMemoryField />}
      {info && status !== 'starting' && <GpuDetails info={info} />}
    </div>
  );
}
