import { useMemo } from 'react';
import { useQuery } from '@tanstack/react-query';
import { errorMessage, type ModelSummary } from '../../client/index.ts';
import { fetchModelConfig } from '../../client/hub-metadata.ts';
import { parseModelConfig } from '../../client/memory-plan.ts';
import { useGpuStore } from '../../store/gpu.ts';
import { useModelStore } from '../../store/model.ts';
import { useSettingsStore } from '../../store/settings.ts';
import { FitNotice } from './FitNotice.tsx';
import { fitVerdict, presetNeeds } from './memory-fit.ts';
import { useGpuBudget, usePresetVerdicts } from './useMemoryFit.ts';

/** The loaded model's default run against the GPU memory budget: its preset's verdict, or the
 *  planner over its config.json (a small Hub read through react-query; the worker keeps no copy). */
export function ModelFit({ model }: { model: ModelSummary }) {
  const verdicts = usePresetVerdicts();
  const info = useGpuStore((s) => s.info);
  const budget = useGpuBudget();
  const endpoint = useSettingsStore((s) => s.effective.hubUrl);
  const token = useModelStore((s) => s.token);
  const presetId = verdicts && [...verdicts.keys()].find((id) => id.toLowerCase() === model.id.toLowerCase());

  const config = useQuery({
    queryKey: ['model-config', endpoint, model.id, model.revision],
    queryFn: ({ signal }) => fetchModelConfig({ endpoint, token }, model.id, model.revision ?? 'main', signal),
    enabled: !presetId && model.source === 'hub',
    retry: false,
    staleTime: Infinity, // a commit's config.json never changes
  });

  const planned = useMemo(() => {
    if (presetId || !config.data || !info) return null;
    try {
      return { verdict: fitVerdict(parseModelConfig(config.data), info, budget.bytes, presetNeeds(info)) };
    } catch (e) {
      return { error: errorMessage(e) };
    }
  }, [presetId, config.data, info, budget.bytes]);

  const verdict = presetId ? verdicts?.get(presetId) : planned?.verdict;
  if (verdict) return <FitNotice verdict={verdict} testId="model-fit" showFits />;
  const problem = config.isError ? errorMessage(config.error) : planned?.error;
  if (!problem) return null;
  return (
    <p className="muted small" data-testid="model-fit-unknown">
      Not checked against the GPU memory: {problem}
    </p>
  );
}
