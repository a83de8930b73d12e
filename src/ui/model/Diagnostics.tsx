import { SELF_TEST_SIZE, useDiagnosticsStore } from '../../store/diagnostics.ts';
import { useGpuStore } from '../../store/gpu.ts';
import { formatSci } from '../format.ts';

function SelfTest() {
  const check = useDiagnosticsStore((s) => s.selfTest);
  const run = useDiagnosticsStore((s) => s.runSelfTest);
  const gpuReady = useGpuStore((s) => s.status === 'ready');
  const { m, n, k } = SELF_TEST_SIZE;
  const r = check.result;

  return (
    <div className="diag">
      <div className="row">
        <button
          type="button"
          data-testid="selftest-run"
          disabled={check.status === 'running' || !gpuReady}
          onClick={() => void run()}
        >
          {check.status === 'running' ? 'Running…' : 'Run GPU self-test'}
        </button>
        <span className="muted">
          A {m}×{n}×{k} matmul on the GPU, checked against a float64 reference on the CPU.
        </span>
      </div>
      {check.status !== 'idle' && (
        <p
          className={`result ${r ? (r.ok ? 'ok' : 'bad') : check.status === 'failed' ? 'bad' : ''}`}
          data-testid="selftest-result"
          data-status={check.status}
          data-ok={r ? String(r.ok) : check.status === 'failed' ? 'false' : undefined}
          data-max-rel-error={r ? String(r.maxRelError) : undefined}
          role="status"
        >
          {check.status === 'running' && 'Running…'}
          {r &&
            `matmul ${r.m}×${r.n}×${r.k} ${r.dtype}: max rel error ${formatSci(r.maxRelError)} (tolerance ${formatSci(r.tolerance)}) ${r.ok ? '✓' : '✗'}`}
          {check.status === 'failed' && `Self-test failed: ${check.error}`}
        </p>
      )}
      {r && <p className="muted small">Took {r.ms.toFixed(1)} ms, including compiling the kernel and reading back.</p>}
    </div>
  );
}

function StorageCheck() {
  const check = useDiagnosticsStore((s) => s.storage);
  const run = useDiagnosticsStore((s) => s.checkStorage);
  const r = check.result;
  return (
    <div className="diag">
      <div className="row">
        <button
          type="button"
          data-testid="storage-check"
          disabled={check.status === 'running'}
          onClick={() => void run()}
        >
          {check.status === 'running' ? 'Checking…' : 'Check storage'}
        </button>
        <span className="muted">Writes a value to IndexedDB from the data worker and reads it back.</span>
      </div>
      {check.status !== 'idle' && (
        <p
          className={`result ${r ? (r.ok ? 'ok' : 'bad') : check.status === 'failed' ? 'bad' : ''}`}
          data-testid="storage-probe"
          data-status={check.status}
          data-ok={r ? String(r.ok) : check.status === 'failed' ? 'false' : undefined}
          role="status"
        >
          {check.status === 'running' && 'Checking…'}
          {r &&
            (r.ok
              ? `IndexedDB works: wrote "${r.wrote}" and read it back ✓`
              : `IndexedDB returned something else: wrote "${r.wrote}", read "${r.readBack}" ✗`)}
          {check.status === 'failed' && `Storage check failed: ${check.error}`}
        </p>
      )}
    </div>
  );
}

export function Diagnostics() {
  return (
    <>
      <SelfTest />
      <StorageCheck />
    </>
  );
}
