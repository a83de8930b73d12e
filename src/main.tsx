// Entry point. The page itself never touches WebGPU or IndexedDB: it only checks that
// navigator.gpu exists (else the no-WebGPU page, and no worker is started); the trainer worker
// creates the device and may still report WebGPU unusable (no adapter, device refused).
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { startStudio } from './store/boot.ts';
import { App } from './ui/App.tsx';
import { NoWebGPUPage } from './ui/NoWebGPUPage.tsx';
import './ui/styles.css';

const queryClient = new QueryClient({
  defaultOptions: { queries: { staleTime: 5 * 60_000, retry: 1, refetchOnWindowFocus: false } },
});

function pageHasWebGPU(): boolean {
  return 'gpu' in navigator && (navigator as { gpu?: unknown }).gpu != null;
}

const root = createRoot(document.getElementById('root')!);

if (!pageHasWebGPU()) {
  root.render(
    <StrictMode>
      <NoWebGPUPage reason="no-api" />
    </StrictMode>,
  );
} else {
  startStudio();
  root.render(
    <StrictMode>
      <QueryClientProvider client={queryClient}>
        <App />
      </QueryClientProvider>
    </StrictMode>,
  );
}
