import { useEffect, type ReactNode } from 'react';
import { formatBytes } from '../../util/format.ts';
import { useGpuStore } from '../../store/gpu.ts';
import { useModelStore } from '../../store/model.ts';
import { useRunStore } from '../../store/run.ts';
import { canPick, useExportStore, type JobKind } from '../../store/export.ts';
import { Checklist } from '../widgets/Checklist.tsx';
import { Notice } from '../widgets/Notice.tsx';
import { Section } from '../widgets/Section.tsx';
import { ExportJobView } from './ExportJobView.tsx';
import { GgufTypePicker } from './GgufTypePicker.tsx';
import { HubUploadSection } from './HubUploadSection.tsx';
import './export.css';

/** The button of one export, with the reason it cannot run (if any) read out with it. */
function ExportButton({ kind, label, blocked }: { kind: JobKind; label: string; blocked: string | null }) {
  const start = useExportStore((s) => s.start);
  const busy = useExportStore((s) => s.job?.status === 'running' || s.job?.status === 'picking');
  return (
    <div className="row export-action">
      <button type="button" data-testid={`export-${kind}-button`} disabled={blocked !== null || busy} aria-describedby={`export-${kind}-why`} onClick={() => void start(kind)}>
        {label}
      </button>
      <span id={`export-${kind}-why`} className="muted small">
        {blocked ?? (busy ? 'One export at a time.' : '')}
      </span>
    </div>
  );
}

function Size({ bytes, testId }: { bytes: number | null | undefined; testId: string }) {
  return (
    <span className="muted small" data-testid={testId} data-bytes={bytes ?? ''}>
      {bytes ? `about ${formatBytes(bytes)}` : ''}
    </span>
  );
}

/** One kind of export: its testid says whether it can run now (data-enabled). */
function Target({ kind, blocked, children }: { kind: JobKind; blocked: string | null; children: ReactNode }) {
  return (
    <div data-testid={`export-${kind}`} data-enabled={blocked === null}>
      {children}
    </div>
  );
}

function Option({ children }: { children: ReactNode }) {
  return <div className="export-option">{children}</div>;
}

/** Where files go: a picked file/folder (File System Access API) or the browser's downloads. */
function SaveMode() {
  const mode = useExportStore((s) => s.saveMode);
  const setMode = useExportStore((s) => s.setSaveMode);
  const pickable = canPick();
  return (
    <div className="field">
      <label htmlFor="export-save-mode">Save to</label>
      <select id="export-save-mode" data-testid="export-save-mode" value={mode} onChange={(e) => setMode(e.target.value === 'pick' ? 'pick' : 'download')}>
        <option value="pick" disabled={!pickable}>
          A file or folder I pick{pickable ? '' : ' (not in this browser)'}
        </option>
        <option value="download">Browser downloads</option>
      </select>
      <small>
        {mode === 'pick'
          ? 'Written straight to disk as it is made; a cancelled export leaves nothing behind.'
          : "Written to the browser's storage first (it needs room for the whole export), then downloaded. Folder exports arrive as separate downloads."}
      </small>
    </div>
  );
}

export function ExportTab() {
  const gpuReady = useGpuStore((s) => s.status === 'ready');
  const model = useModelStore((s) => (s.status === 'loaded' ? s.model : null));
  const hasAdapter = useRunStore((s) => s.hasAdapter);
  const options = useExportStore((s) => s.options);
  const optionsError = useExportStore((s) => s.optionsError);
  const refresh = useExportStore((s) => s.refreshOptions);
  const ggufType = useExportStore((s) => s.ggufType);
  const setGgufType = useExportStore((s) => s.setGgufType);
  const dtype = useExportStore((s) => s.mergedDtype);
  const setDtype = useExportStore((s) => s.setMergedDtype);
  const modelfile = useExportStore((s) => s.modelfile);
  const setModelfile = useExportStore((s) => s.setModelfile);
  const busy = useExportStore((s) => s.job?.status === 'running' || s.job?.status === 'picking');

  useEffect(() => {
    if (gpuReady) void refresh();
  }, [gpuReady, model?.id, hasAdapter, refresh]);

  // The worker knows whether it holds an adapter (a reload loses it); the run store, whether one was trained.
  const adapter = options?.hasAdapter ?? hasAdapter;
  const blocked = !model ? 'Needs a loaded model.' : !adapter ? 'Needs a trained adapter.' : null;
  const sizes = options?.sizes ?? null;
  const ggufBlocked = blocked ?? (sizes?.ggufProblem ? 'Not possible for this model (see above).' : null);
  const origin = options?.baseOrigin === 'nf4' ? 'the dequantized NF4 weights (this checkpoint is bitsandbytes 4-bit)' : 'the original base weights, re-read from the model cache';

  return (
    <>
      <Section title="Export">
        {model && adapter ? (
          <Notice tone="ok" testId="export-ready">
            Ready to export the adapter trained on {model.name}.
          </Notice>
        ) : (
          <Notice tone="empty" testId="export-ready">
            Nothing to export yet: {model ? 'train an adapter first.' : 'load a model and train an adapter first.'}
          </Notice>
        )}
        <Checklist
          testId="export-checklist"
          items={[
            { id: 'export-model', label: 'Model loaded', done: model !== null, hint: <a href="#model">Model tab</a> },
            { id: 'export-adapter', label: 'Adapter trained', done: adapter, hint: <a href="#train">Train tab</a> },
          ]}
        />
        {optionsError && <Notice tone="warn">{optionsError}</Notice>}
        {sizes?.ggufProblem && (
          <Notice tone="warn" testId="export-gguf-problem">
            {sizes.ggufProblem}
          </Notice>
        )}
        <SaveMode />
        <ExportJobView />
      </Section>

      <Section title="LoRA adapter (PEFT)">
        <Target kind="adapter" blocked={blocked}>
          <p className="muted">
            <code>adapter_config.json</code>, <code>adapter_model.safetensors</code> and a README with the training settings, as one .zip. Small; load it
            with PEFT on the same base model. <Size bytes={sizes?.adapter} testId="export-adapter-size" />
          </p>
          <ExportButton kind="adapter" label="Export adapter (.zip)" blocked={blocked} />
        </Target>
      </Section>

      <Section title="Merged 16-bit model">
        <Target kind="merged" blocked={blocked}>
          <p className="muted">
            The adapter merged into {origin}: safetensors shards of up to 5 GB, config, tokenizer files with the training chat template, and a README.
            Loads with transformers like any model.
          </p>
          <Option>
            <span className="muted small">Precision</span>
            <label>
              <input type="radio" name="merged-dtype" data-testid="merged-dtype-bf16" checked={dtype === 'bfloat16'} disabled={busy} onChange={() => setDtype('bfloat16')} /> bf16{' '}
              <Size bytes={sizes?.merged.bfloat16} testId="export-merged-size-bf16" />
            </label>
            <label>
              <input type="radio" name="merged-dtype" data-testid="merged-dtype-f16" checked={dtype === 'float16'} disabled={busy} onChange={() => setDtype('float16')} /> f16{' '}
              <Size bytes={sizes?.merged.float16} testId="export-merged-size-f16" />
            </label>
          </Option>
          <ExportButton kind="merged" label={`Export merged ${dtype === 'bfloat16' ? 'bf16' : 'f16'}`} blocked={blocked} />
        </Target>
      </Section>

      <Section title="GGUF for llama.cpp, Ollama, LM Studio">
        <Target kind="gguf" blocked={ggufBlocked}>
          <p className="muted">
            The merged model in one GGUF file with the tokenizer and the chat template, quantized in the background
            {options ? ` (${options.poolSize} worker${options.poolSize === 1 ? '' : 's'})` : ''}; the sizes are what will be written.
          </p>
          <GgufTypePicker value={ggufType} sizes={sizes?.gguf ?? null} disabled={busy} onChange={setGgufType} />
          <Option>
            <label>
              <input type="checkbox" data-testid="export-modelfile" checked={modelfile} disabled={busy} onChange={(e) => setModelfile(e.target.checked)} /> Ollama
              Modelfile next to it (FROM, TEMPLATE, stop tokens: <code>ollama create NAME -f Modelfile</code>); the two go into a new folder
            </label>
          </Option>
          <ExportButton kind="gguf" label={`Export GGUF ${ggufType.toUpperCase()}`} blocked={ggufBlocked} />
        </Target>
      </Section>

      <Section title="Run bundle (for accelerate / Axolotl)">
        <Target kind="bundle" blocked={blocked}>
          <p className="muted">
            To go on with this run on GPUs: the prepared dataset as JSONL, <code>train.py</code> (transformers + PEFT + accelerate, DDP or FSDP) with the same
            settings and tokens, an Axolotl config, the tokenizer and this adapter, as one .zip with a README of the commands. The dataset&apos;s records are
            read again from its source (a file must be the one chosen in the Data tab).
          </p>
          <ExportButton kind="bundle" label="Export run bundle (.zip)" blocked={blocked} />
        </Target>
      </Section>

      <Section title="Upload to the Hub">
        <HubUploadSection blocked={blocked} />
      </Section>
    </>
  );
}
