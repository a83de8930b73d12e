import { formatBytes } from '../../util/format.ts';
import { useCatalogStore } from '../../store/catalog.ts';
import { useGpuStore } from '../../store/gpu.ts';
import { useModelStore } from '../../store/model.ts';
import type { PresetView } from '../../client/index.ts';
import { formatCount } from '../format.ts';
import { Notice } from '../widgets/Notice.tsx';
import { FitNotice } from './FitNotice.tsx';
import { HubModelPicker } from './HubModelPicker.tsx';
import { planLinesWithBudget, type FitVerdict } from './memory-fit.ts';
import { usePresetVerdicts } from './useMemoryFit.ts';

function PlanDetails({ preset }: { preset: PresetView }) {
  return (
    <details>
      <summary className="small">
        GPU memory ≈ {formatBytes(preset.memoryBytes)} for the default run (weights {formatBytes(preset.weightBytes)})
      </summary>
      <ul className="plan-lines">
        {planLinesWithBudget(preset.planLines).map((l) => (
          <li key={l}>{l}</li>
        ))}
      </ul>
    </details>
  );
}

function LoadButton({ testId, onClick, label = 'Load' }: { testId: string; onClick: () => void; label?: string }) {
  const gpuReady = useGpuStore((s) => s.status === 'ready');
  return (
    <button type="button" data-testid={testId} disabled={!gpuReady} title={gpuReady ? undefined : 'The GPU is not ready'} onClick={onClick}>
      {label}
    </button>
  );
}

function DemoModel({ verdict }: { verdict?: FitVerdict }) {
  const status = useCatalogStore((s) => s.status);
  const model = useCatalogStore((s) => s.manifest?.model);
  const error = useCatalogStore((s) => s.error);
  const preset = useModelStore((s) => s.presets?.find((p) => p.demo));
  const load = useModelStore((s) => s.load);

  if (status === 'idle' || status === 'loading') {
    return (
      <li className="item">
        <Notice>Reading the demo manifest…</Notice>
      </li>
    );
  }
  if (!model) {
    return (
      <li className="item">
        <Notice tone="warn" testId="demo-missing">
          The offline demo model is not available. {error}
        </Notice>
      </li>
    );
  }
  const bytes = model.files.reduce((sum, f) => sum + f.size, 0);
  return (
    <li className="item" data-testid="model-demo" data-model-id={model.id}>
      <div className="item-main">
        <span className="item-title">{model.name}</span> <span className="badge">{preset?.family ?? 'offline'}</span>
        <LoadButton testId="model-load-demo" onClick={() => void load({ kind: 'demo' })} />
      </div>
      <div className="item-meta">
        {formatCount(model.params)} parameters · {model.files.length} files · {formatBytes(bytes)} · <code>{model.path}</code>
      </div>
      {verdict && <FitNotice verdict={verdict} />}
      {preset && <PlanDetails preset={preset} />}
    </li>
  );
}

function Preset({ preset, verdict }: { preset: PresetView; verdict?: FitVerdict }) {
  const load = useModelStore((s) => s.load);
  return (
    <li className="item" data-testid={`preset-${preset.id}`} data-fit={verdict?.level}>
      <div className="item-main">
        <span className="item-title">{preset.label}</span> <span className="badge">{preset.family}</span>
        <LoadButton testId={`preset-load-${preset.id}`} onClick={() => void load({ kind: 'hub', id: preset.id })} />
      </div>
      <div className="item-meta">
        <code>{preset.id}</code> · {formatCount(preset.params)} parameters · download ≈ {formatBytes(preset.downloadBytes)}
        {preset.note && ` · ${preset.note}`}
      </div>
      {verdict && <FitNotice verdict={verdict} />}
      <PlanDetails preset={preset} />
    </li>
  );
}

/** The demo, the curated presets with their memory plans and whether they fit this GPU, and any
 *  Hub model by search or id. */
export function ModelList() {
  const presets = useModelStore((s) => s.presets);
  const demoId = presets?.find((p) => p.demo)?.id;
  const verdicts = usePresetVerdicts();
  return (
    <>
      <ul className="items" data-testid="model-list">
        <DemoModel verdict={demoId ? verdicts?.get(demoId) : undefined} />
        {presets?.filter((p) => !p.demo).map((p) => <Preset key={p.id} preset={p} verdict={verdicts?.get(p.id)} />)}
      </ul>
      <HubModelPicker />
    </>
  );
}
