import { useModelStore } from '../../store/model.ts';
import { formatCount } from '../format.ts';
import { Notice } from '../widgets/Notice.tsx';
import { Section } from '../widgets/Section.tsx';
import { Diagnostics } from './Diagnostics.tsx';
import { GpuInfoPanel } from './GpuInfoPanel.tsx';
import { ModelList } from './ModelList.tsx';

function CurrentModel() {
  const status = useModelStore((s) => s.status);
  const model = useModelStore((s) => s.model);
  const error = useModelStore((s) => s.error);
  if (status === 'loaded' && model) {
    return (
      <Notice tone="ok" testId="model-status">
        Loaded: {model.name} ({formatCount(model.params)} parameters, {model.quantization})
      </Notice>
    );
  }
  if (status === 'loading') return <Notice testId="model-status">Loading…</Notice>;
  if (status === 'error') return <Notice tone="error" testId="model-status">{error}</Notice>;
  return (
    <Notice tone="empty" testId="model-status">
      No model loaded
    </Notice>
  );
}

export function ModelTab() {
  return (
    <>
      <Section title="Current model">
        <CurrentModel />
      </Section>
      <Section title="Models">
        <ModelList />
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
