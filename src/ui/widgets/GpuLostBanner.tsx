import { useGpuStore } from '../../store/gpu.ts';
import { useWorkersStore } from '../../store/workers.ts';

export function GpuLostBanner() {
  const lost = useGpuStore((s) => (s.status === 'lost' ? s.lost : null));
  const restart = useWorkersStore((s) => s.restart);
  if (!lost) return null;
  return (
    <div className="banner banner-warn" role="alert" data-testid="gpu-lost" data-reason={lost.reason}>
      <div className="banner-text">
        <strong>The GPU device was lost</strong> ({lost.reason || 'unknown reason'}){lost.message ? `: ${lost.message}` : '.'}{' '}
        Anything on the GPU (model, training state) is gone; restarting the trainer creates a new device.
      </div>
      <div className="banner-actions">
        <button type="button" onClick={() => void restart('trainer')}>
          Restart trainer
        </button>
      </div>
    </div>
  );
}
