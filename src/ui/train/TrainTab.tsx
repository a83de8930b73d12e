import { useSelectedDataset } from '../../store/dataset.ts';
import { usePreparedList } from '../data/usePreparedList.ts';
import { useGpuStore } from '../../store/gpu.ts';
import { useModelStore } from '../../store/model.ts';
import { useRunStore } from '../../store/run.ts';
import { Checklist } from '../widgets/Checklist.tsx';
import { Notice } from '../widgets/Notice.tsx';
import { Section } from '../widgets/Section.tsx';

export function TrainTab() {
  const modelLoaded = useModelStore((s) => s.status === 'loaded');
  usePreparedList();
  const datasetReady = useSelectedDataset() !== null;
  const gpuReady = useGpuStore((s) => s.status === 'ready');
  const run = useRunStore((s) => s.status);
  const ready = modelLoaded && datasetReady;

  return (
    <Section title="Training">
      {ready ? (
        <Notice tone="ok" testId="train-status">
          Ready to train ({run}).
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
    </Section>
  );
}
