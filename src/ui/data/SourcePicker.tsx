import { useRef, useState, type DragEvent } from 'react';
import { useDatasetStore } from '../../store/dataset.ts';
import { DatasetList } from './DatasetList.tsx';
import { HubDatasetForm } from './HubDatasetForm.tsx';

const ACCEPT = '.jsonl,.ndjson,.json,.parquet,application/json';

/** Drop a file, pick one, use the demo, or name a Hub dataset. */
export function SourcePicker() {
  const choose = useDatasetStore((s) => s.chooseSource);
  const input = useRef<HTMLInputElement>(null);
  const [over, setOver] = useState(false);

  const onFiles = (files: FileList | null) => {
    const file = files?.[0];
    if (file) void choose({ kind: 'file', file });
  };
  const onDrop = (e: DragEvent) => {
    e.preventDefault();
    setOver(false);
    onFiles(e.dataTransfer.files);
  };

  return (
    <>
      <div
        className={`dropzone${over ? ' over' : ''}`}
        data-testid="data-dropzone"
        onDragOver={(e) => {
          e.preventDefault();
          setOver(true);
        }}
        onDragLeave={() => setOver(false)}
        onDrop={onDrop}
      >
        <p>
          Drop a <strong>JSONL</strong>, <strong>JSON</strong> or <strong>Parquet</strong> file here, or{' '}
          <button type="button" className="secondary" onClick={() => input.current?.click()}>
            choose a file
          </button>
        </p>
        <p className="muted small">It is read in this browser, in a worker, as a stream: it never leaves the machine.</p>
        <input
          ref={input}
          type="file"
          accept={ACCEPT}
          className="visually-hidden"
          data-testid="data-file-input"
          aria-label="Dataset file"
          onChange={(e) => {
            onFiles(e.target.files);
            e.target.value = ''; // the same file again is a new choice
          }}
        />
      </div>
      <h3>Demo</h3>
      <DatasetList />
      <h3>Hugging Face Hub</h3>
      <HubDatasetForm />
    </>
  );
}
