import { useEffect } from 'react';
import { useSelectedDataset } from '../../store/dataset.ts';
import { usePreparedList } from '../data/usePreparedList.ts';
import { useGpuStore } from '../../store/gpu.ts';
import { useModelStore } from '../../store/model.ts';
import { useRunStore } from '../../store/run.ts';
import { Checklist } from '../widgets/Checklist.tsx';
import { Notice } from '../widgets/Notice.tsx';
import { Section } from '../widgets/Section.tsx';
import { RunCharts, RunLog, RunProgress, RunSummary } from './RunView.tsx';
import { SettingsForm } from './SettingsForm.tsx';
import './train.css';

export function TrainTab() {
  const modelLoaded = useModelStore((s) => s.status === 'loaded');
  usePreparedList();
  const dataset = useSelectedDataset();
  const datasetReady = dataset !== null;
  const gpuReady = useGpuStore((s) => s.status === 'ready');
  const status = useRunStore((s) => s.status);
  const error = useRunStore((s) => s.error);
  const defaults = useRunStore((s) => s.defaults);
  const defaultsError = useRunStore((s) => s.defaultsError);
  const loadDefaults = useRunStore((s) => s.loadDefaults);
  const start = useRunStore((s) => s.start);
  const stop = useRunStore((s) => s.stop);
  const ready = modelLoaded && datasetReady;
  const busy = status === 'running' || status === 'stopping';

  useEffect(() => {
    if (gpuReady) void loadDefaults();
  }, [gpuReady, loadDefaults]);

  return (
    <>
      <Section title="Training">
        {ready ? (
          <Notice tone="ok" testId="train-status">
            {busy ? 'Training' : 'Ready to train'}: {dataset.name} — {dataset.stats.train.rows} train rows of {dataset.options.maxSeqLength} tokens.
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
            { id: 'dataset', label: 'Dataset prepared and selected', done: datasetReady, hint: <a href="#data">Data tab</a> },
          ]}
        />
        {!gpuReady && <Notice tone="warn">The GPU is not ready; see the Model tab.</Notice>}
        <div className="train-controls">
          <button type="button" data-testid="train-start" disabled={!ready || busy || !defaults} onClick={() => dataset && void start(dataset.fingerprint)}>
            Train
          </button>
          <button type="button" className="secondary" data-testid="train-stop" disabled={status !== 'running'} onClick={() => void stop()}>
            Stop
          </button>
          <span className="muted small">Pause / resume from a checkpoint: not yet.</span>
        </div>
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
        {defaultsError ? <Notice tone="error">{defaultsError}</Notice> : <SettingsForm disabled={busy} />}
      </Section>
    </>
  );
}
