// The full page shown instead of the studio when WebGPU is missing (no navigator.gpu in the page)
// or refused (the trainer worker found no adapter, or device creation failed).

const HEADLINES: Record<string, string> = {
  'no-api': 'This browser does not offer WebGPU, which WebTune Studio uses to run and train models on your GPU.',
  'no-adapter': 'WebGPU is present, but no GPU adapter is available to it.',
  'device-failed': 'WebGPU is present, but the GPU refused to create a device.',
};

export function NoWebGPUPage({ reason, detail }: { reason: string; detail?: string }) {
  return (
    <main className="no-webgpu" data-testid="no-webgpu" data-reason={reason}>
      <h1>WebTune Studio needs WebGPU</h1>
      <p className="lead">{HEADLINES[reason] ?? HEADLINES['no-api']}</p>
      {detail && (
        <p className="detail" data-testid="no-webgpu-detail">
          {detail}
        </p>
      )}

      <section aria-labelledby="nw-browsers">
        <h2 id="nw-browsers">Browsers that work</h2>
        <ul>
          <li>Chrome or Edge 113 or newer, on desktop (Windows, macOS, ChromeOS; Linux with a recent driver)</li>
          <li>Safari 26 (macOS, iOS, iPadOS)</li>
          <li>
            Firefox, with WebGPU enabled: <code>dom.webgpu.enabled</code> set to <code>true</code> in{' '}
            <code>about:config</code>
          </li>
        </ul>
      </section>

      <section aria-labelledby="nw-check">
        <h2 id="nw-check">How to check</h2>
        <ol>
          <li>
            In Chrome or Edge, open <code>chrome://gpu</code> (or <code>edge://gpu</code>) and look for{' '}
            <q>WebGPU: Hardware accelerated</q>.
          </li>
          <li>Make sure hardware acceleration is on in the browser's settings (System section).</li>
          <li>Update the GPU driver; some GPUs are blocklisted with old drivers.</li>
          <li>
            On Linux, WebGPU may still need <code>chrome://flags/#enable-unsafe-webgpu</code> (and Vulkan).
          </li>
        </ol>
      </section>

      <p>
        <button type="button" onClick={() => location.reload()}>
          Try again
        </button>
      </p>
      <p className="muted">Your data never leaves this machine: WebTune Studio trains in the browser tab itself.</p>
    </main>
  );
}
