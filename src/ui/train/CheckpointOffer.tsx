// The stored checkpoint, offered for resume: after a pause or a stop, and after a reload (the
// trainer worker keeps checkpoints in OPFS). Says which model and dataset, step N of M and when;
// Resume and Discard; when another model (or none) is loaded, says to load the checkpoint's model
// first, with a button when the Model tab can load it by its id (the demo, a preset, a Hub id).
import { useState } from 'react';
import { useCatalogStore } from '../../store/catalog.ts';
import { useDatasetStore } from '../../store/dataset.ts';
import { useModelStore, type LoadRequest } from '../../store/model.ts';
import { useRunStore, type CheckpointInfo } from '../../store/run.ts';
import { formatSci } from '../format.ts';
import { formatBytes } from '../../util/format.ts';

/** "just now", "5 min ago", "3 h ago", else the date. */
function ago(t: number, now = Date.now()): string {
  const s = Math.max(0, (now - t) / 1000);
  if (s < 60) return 'just now';
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(t).toLocaleString();
}

const REASON_WORDS: Record<CheckpointInfo['reason'], string> = {
  interval: 'saved during the run',
  pause: 'saved when it paused',
  stop: 'saved when it was stopped',
  end: 'saved when it ended',
};

/** A Hub repo id: owner/name. */
const HUB_ID = /^[\w.-]+\/[\w.-]+$/;

/** How the Model tab would load `modelId`, or null when it cannot by id alone. */
function loadRequestFor(modelId: string, demoId: string | null): LoadRequest | null {
  if (modelId === demoId) return { kind: 'demo' };
  return HUB_ID.test(modelId) ? { kind: 'hub', id: modelId } : null;
}

function ModelNeeded({ modelId }: { modelId: string }) {
  const current = useModelStore((s) => (s.status === 'loaded' ? s.model : null));
  const loading = useModelStore((s) => s.loading);
  const loadError = useModelStore((s) => s.error);
  const load = useModelStore((s) => s.load);
  const demo = useCatalogStore((s) => s.manifest?.model ?? null);
  // Until the demo manifest has been read, the demo's id would pass for a Hub id.
  const catalogSettled = useCatalogStore((s) => s.status === 'ready' || s.status === 'missing');
  const request = catalogSettled ? loadRequestFor(modelId, demo?.id ?? null) : null;
  const label = request?.kind === 'demo' && demo ? demo.name : modelId;
  const busy = loading !== null;
  return (
    <div className="notice notice-warn" data-testid="train-checkpoint-model" data-model-id={modelId}>
      <p>
        This run trained <code>{modelId}</code>
        {current ? (
          <>
            , but <code>{current.id}</code> is loaded
          </>
        ) : (
          ', and no model is loaded'
        )}
        : load <code>{modelId}</code> first, then resume.
      </p>
      <div className="row">
        {!catalogSettled ? (
          <span className="muted small">Reading the demo catalog…</span>
        ) : request ? (
          <button type="button" data-testid="train-checkpoint-load-model" disabled={busy} onClick={() => void load(request)}>
            {busy ? 'Loading…' : `Load ${label}`}
          </button>
        ) : (
          <span>
            Load it in the <a href="#model">Model tab</a>.
          </span>
        )}
        {!busy && loadError && <span className="inline-msg inline-error">{loadError}</span>}
      </div>
    </div>
  );
}

function DiscardButton({ step, disabled }: { step: number; disabled: boolean }) {
  const discard = useRunStore((s) => s.discardCheckpoint);
  const [asking, setAsking] = useState(false);
  if (!asking) {
    return (
      <button type="button" className="secondary" data-testid="train-discard" disabled={disabled} onClick={() => setAsking(true)}>
        Discard…
      </button>
    );
  }
  return (
    <span className="row" role="group" aria-label="Confirm discarding the checkpoint">
      <span className="small">Delete the checkpoint of step {step}? It cannot be resumed afterwards.</span>
      <button type="button" className="danger" data-testid="train-discard-confirm" autoFocus onClick={() => void discard().then(() => setAsking(false))}>
        Delete it
      </button>
      <button type="button" className="secondary" onClick={() => setAsking(false)}>
        Keep it
      </button>
    </span>
  );
}

export function CheckpointOffer() {
  const info = useRunStore((s) => s.checkpoint);
  const status = useRunStore((s) => s.status);
  const hasAdapter = useRunStore((s) => s.hasAdapter);
  const runId = useRunStore((s) => s.runId);
  const problem = useRunStore((s) => s.checkpointProblem);
  const resume = useRunStore((s) => s.resume);
  const model = useModelStore((s) => (s.status === 'loaded' ? s.model : null));
  const preparedList = useDatasetStore((s) => s.prepared);
  const busy = status === 'running' || status === 'pausing' || status === 'stopping';

  if (problem && !busy) return <p className="notice notice-warn">{problem}</p>;
  if (!info || busy) return null;
  const finished = info.reason === 'end';
  const complete = finished && info.step >= info.totalSteps;
  // This page's own finished run: its adapter is loaded already; nothing to offer.
  if (finished && hasAdapter && runId === info.runId) return null;

  const dataset = preparedList.value?.find((m) => m.fingerprint === info.dataset && m.status === 'complete') ?? null;
  const datasetMissing = preparedList.status === 'ready' && info.dataset !== null && dataset === null;
  const modelOk = !info.modelId || model?.id === info.modelId;
  const s = info.settings;
  const action = complete ? 'Restore its adapter' : `Resume from step ${info.step}`;

  return (
    <div className="train-checkpoint" data-testid="train-checkpoint" data-step={info.step} data-total={info.totalSteps} data-reason={info.reason} data-run-id={info.runId}>
      <p className="train-checkpoint-title">
        <strong>
          {status === 'paused' ? 'Paused' : complete ? 'A finished run is stored' : finished ? 'A run that stopped early is stored' : 'A run can be resumed'}
        </strong>
        : step {info.step} of {info.totalSteps}, {REASON_WORDS[info.reason]} {ago(info.createdAt)} ({formatBytes(info.bytes)}).
      </p>
      <dl className="train-checkpoint-facts">
        <dt>Model</dt>
        <dd>
          <code>{info.modelId ?? 'not recorded'}</code>
        </dd>
        <dt>Dataset</dt>
        <dd data-testid="train-checkpoint-dataset">{dataset ? `${dataset.name} — ${dataset.stats.train.rows} train rows` : info.dataset ? <code>{info.dataset.slice(0, 12)}…</code> : 'not recorded'}</dd>
        <dt>Settings</dt>
        <dd>
          r {s.loraR}, alpha {s.loraAlpha}, lr {formatSci(s.learningRate)} {s.schedule}, batch {s.batchSize} × {s.gradAccum}, {s.optimizer}
          {info.lastEvalLoss !== null ? `; last eval loss ${info.lastEvalLoss.toFixed(4)}` : ''}
        </dd>
      </dl>
      {info.modelId && !modelOk && <ModelNeeded modelId={info.modelId} />}
      {datasetMissing && (
        <p className="notice notice-warn">
          Its prepared dataset is no longer stored: prepare the same data with the same options in the <a href="#data">Data tab</a>, then resume.
        </p>
      )}
      <div className="row">
        <button type="button" data-testid="train-resume" disabled={!modelOk || datasetMissing} onClick={() => void resume()}>
          {action}
        </button>
        <DiscardButton step={info.step} disabled={false} />
      </div>
      <p className="muted small">
        {complete ? 'Restoring trains no further: it puts the adapter back for chat and export. ' : 'Resume continues with the checkpoint’s own settings. '}
        Train starts a new run instead and replaces this checkpoint.
      </p>
    </div>
  );
}
