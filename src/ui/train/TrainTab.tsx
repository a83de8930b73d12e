// The Train tab: what training needs (model, dataset), Train / Pause / Stop, the stored checkpoint
// offered for resume, progress, live charts, the run log, and the settings form.
import { useEffect } from 'react';
import { useSelectedDataset } from '../../store/dataset.ts';
import { usePreparedList } from '../data/usePreparedList.ts';
import { useGpuStore } from '../../store/gpu.ts';
import { useModelStore } from '../../store/model.ts';
import { useRunStore } from '../../store/run.ts';
import { Checklist } from '../widgets/Checklist.tsx';
import { Notice } from '../widgets/Notice.tsx';
import { Section } from '../widgets/Section.tsx';
import { CheckpointOffer } from './CheckpointOffer.tsx';
import { RunCharts } from './RunCharts.tsx';
import { RunLog, RunProgress, RunSummary } from './RunView.tsx';
import { SettingsForm } from './SettingsForm.tsx';
import './train.css';

function TrainControls({ dataset }: { dataset: string | null }) {
  const checked = useRunStore((s) => s.checkpointChecked);
  const modelLoaded = useModelStore((s) => s.status === 'loaded');
  const status = useRunStore((s) => s.status);
  const defaults = useRunStore((s) => s.defaults);
  const start = useRunStore((s) => s.start);
  const pause = useRunStore((s) => s.pause);
  const stop = useRunStore((s) => s.stop);
  const busy = status === 'running' || status === 'pausing' || status === 'stopping';
  return (
    <div className="train-controls" role="group" aria-label="Run controls" data-testid="train-controls" data-checkpoint-checked={checked}>
      <button type="button" data-testid="train-start" disabled={!modelLoaded || !dataset || busy || !defaults} onClick={() => dataset && void start(dataset)}>
        Train
      </button>
      <button type="button" className="secondary" data-testid="train-pause" disabled={status !== 'running'} onClick={() => void pause()} title="Finish the current step, save a checkpoint, and wait">
        Pause
      </button>
      <button
        type="button"
        className="secondary"
        data-testid="train-stop"
        disabled={status !== 'running' && status !== 'pausing'}
        onClick={() => void stop()}
        title="End the run after the current step (its checkpoint is kept)"
      >
        Stop
      </button>
      {busy && <span className="muted small">Pause and Stop take effect after the current step.</span>}
    </div>
  );
}

export function TrainTab() {
  const modelLoaded = useModelStore((s) => s.status === 'loaded');
  usePreparedList();
  const dataset = useSelectedDataset();
  const gpuReady = useGpuStore((s) => s.status === 'ready');
  const status = useRunStore((s) => s.status);
  const error = useRunStore((s) => s.error);
  const defaultsError = useRunStore((s) => s.defaultsError);
  const loadDefaults = useRunStore((s) => s.loadDefaults);
  const refreshCheckpoint = useRunStore((s) => s.refreshCheckpoint);
  const checkpointChecked = useRunStore((s) => s.checkpointChecked);
  const busy = status === 'running' || status === 'pausing' || status === 'stopping';

  useEffect(() => {
    if (!gpuReady) return;
    void loadDefaults();
    if (!checkpointChecked) void refreshCheckpoint();
  }, [gpuReady, loadDefaults, refreshCheckpoint, checkpointChecked]);

  return (
    <>
      <Section title="Training" testId="train-run-section">
        {modelLoaded && dataset ? (
          <Notice tone="ok" testId="train-status">
            {busy ? 'Training' : 'Ready to train'}: {dataset.name} — {dataset.stats.train.rows} train rows
            {dataset.stats.validation.rows > 0 ? `, ${dataset.stats.validation.rows} validation rows` : ''} of {dataset.options.maxSeqLength} tokens.
          </Notice>
        ) : (
          <Notice tone="empty" testId="train-status">
            Load a model and prepare a dataset first
          </Notice>
        )}
        <Checklist
          testId="train-checklist"
          items={[
            { id: 'model', label: 'Model loaded', done: modelLoaded, hint: <a href="#model">Model tab</a> },
            { id: 'dataset', label: 'Dataset prepared and selected', done: dataset !== null, hint: <a href="#data">Data tab</a> },
          ]}
        />
        {!gpuReady && <Notice tone="warn">The GPU is not ready; see the Model tab.</Notice>}
        <TrainControls dataset={dataset?.fingerprint ?? null} />
        <CheckpointOffer />
        {error && (
          <Notice tone="error" testId="train-error">
            {error}
          </Notice>
        )}
        <RunProgress />
        <RunSummary />
        <RunCharts />
        <RunLog />
      </Section>
      <Section title="Settings" testId="train-settings-section">
        {defaultsError ? <Notice tone="error">{defaultsError}</Notice> : <SettingsForm disabled={busy} validationRows={dataset?.stats.validation.rows ?? null} trainRows={dataset?.stats.train.rows ?? null} />}
      </Section>
    </>
  );
}
