import { useDatasetStore } from '../../store/dataset.ts';
import { Section } from '../widgets/Section.tsx';
import { FormatPanel } from './FormatPanel.tsx';
import { PreparedList, SelectedDataset } from './PreparedList.tsx';
import { PreparePanel } from './PreparePanel.tsx';
import { PrepareOptionsForm } from './PrepareOptionsForm.tsx';
import { PreviewPanel } from './PreviewPanel.tsx';
import { SourcePicker } from './SourcePicker.tsx';
import { usePreparedList } from './usePreparedList.ts';
import './data.css';

export function DataTab() {
  usePreparedList();
  const hasSource = useDatasetStore((s) => s.source !== null);
  return (
    <>
      <Section title="Prepared datasets">
        <SelectedDataset />
        <PreparedList />
      </Section>
      <Section title="Source">
        <SourcePicker />
      </Section>
      <FormatPanel />
      {hasSource && (
        <Section title="Options">
          <PrepareOptionsForm />
        </Section>
      )}
      <PreviewPanel />
      <PreparePanel />
    </>
  );
}
