import { useModelStore } from '../../store/model.ts';
import { useRunStore } from '../../store/run.ts';
import { Notice } from '../widgets/Notice.tsx';
import { Section } from '../widgets/Section.tsx';

interface Target {
  id: string;
  title: string;
  what: string;
  needsModel: boolean;
  needsAdapter: boolean;
}

const TARGETS: Target[] = [
  {
    id: 'adapter',
    title: 'LoRA adapter (PEFT)',
    what: 'adapter_config.json + adapter_model.safetensors, loadable with peft',
    needsModel: false,
    needsAdapter: true,
  },
  {
    id: 'merged',
    title: 'Merged 16-bit model',
    what: 'safetensors shards + config + tokenizer files, the adapter merged into the weights',
    needsModel: true,
    needsAdapter: true,
  },
  {
    id: 'gguf',
    title: 'GGUF for llama.cpp, Ollama, LM Studio',
    what: 'f16, bf16, q8_0, q6_k, q5_k_m, q4_k_m, q3_k_m or q2_k',
    needsModel: true,
    needsAdapter: true,
  },
];

export function ExportTab() {
  const modelLoaded = useModelStore((s) => s.status === 'loaded');
  const hasAdapter = useRunStore((s) => s.hasAdapter);

  const why = (t: Target): string | null => {
    const missing: string[] = [];
    if (t.needsModel && !modelLoaded) missing.push('a loaded model');
    if (t.needsAdapter && !hasAdapter) missing.push('a trained adapter');
    return missing.length ? `Needs ${missing.join(' and ')}.` : null;
  };

  return (
    <Section title="Export">
      <p className="muted">Exports are written as a stream to a file you pick, so large models never sit in memory.</p>
      <ul className="items">
        {TARGETS.map((t) => {
          const reason = why(t);
          return (
            <li key={t.id} className="item" data-testid={`export-${t.id}`} data-enabled={reason === null}>
              <div className="item-main">
                <span className="item-title">{t.title}</span>
                <button type="button" disabled aria-describedby={`export-${t.id}-why`}>
                  Export
                </button>
              </div>
              <div className="item-meta">{t.what}</div>
              <div id={`export-${t.id}-why`} className="item-why">
                {reason ?? 'Export is not available yet.'}
              </div>
            </li>
          );
        })}
      </ul>
      {!hasAdapter && <Notice tone="empty">Nothing to export yet: train an adapter in the Train tab first.</Notice>}
    </Section>
  );
}
