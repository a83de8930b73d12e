import { useEffect } from 'react';
import { useGpuStore } from '../../store/gpu.ts';
import { useModelStore } from '../../store/model.ts';
import { Section } from '../widgets/Section.tsx';
import { CachePanel } from './CachePanel.tsx';
import { CurrentModel } from './CurrentModel.tsx';
import { Diagnostics } from './Diagnostics.tsx';
import { GpuInfoPanel } from './GpuInfoPanel.tsx';
import { ModelList } from './ModelList.tsx';
import './model.css';

export function ModelTab() {
  const gpuStatus = useGpuStore((s) => s.status);
  // Presets are planned against the GPU's limits, and the cache lives in the trainer worker.
  useEffect(() => {
    if (gpuStatus !== 'ready') return;
    void useModelStore.getState().loadPresets();
    void useModelStore.getState().refreshCache();
  }, [gpuStatus]);

  return (
    <>
      <Section title="Current model">
        <CurrentModel />
      </Section>
      <Section title="Models">
        <ModelList />
      </Section>
      <Section title="Cached model files">
        <CachePanel />
      </Section>
      <Section title="GPU">
        <GpuInfoPanel />
      </Section>
      <Section title="Diagnostics" testId="diagnostics">
        <Diagnostics />
      </Section>
    </>
  );
}
