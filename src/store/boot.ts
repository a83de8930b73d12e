// Starting the studio: the trainer worker creates the GPU device, the data worker reads the demo
// manifest. Called once from main.tsx, after the page has been found to have navigator.gpu.
import { installDebugHandle } from '../client/index.ts';
import { useCatalogStore } from './catalog.ts';
import { useGpuStore } from './gpu.ts';
import './workers.ts'; // subscribes to worker events before any worker starts

export function startStudio(): void {
  installDebugHandle();
  void useGpuStore.getState().init();
  void useCatalogStore.getState().load();
}
