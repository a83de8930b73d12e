import { defineConfig } from 'vitest/config';
import react from '@vitejs/plugin-react';

export default defineConfig({
  plugins: [react()],
  worker: { format: 'es' },
  build: { target: 'es2022', chunkSizeWarningLimit: 4096 },
  // `webgpu` (Dawn for Node) is only ever imported in Node; keep it out of the browser graph.
  optimizeDeps: { exclude: ['webgpu'] },
  test: {
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['tests/**/*.test.ts'],
          environment: 'node',
          pool: 'forks',
          setupFiles: ['tests/setup/node-globals.ts'],
          testTimeout: 60_000,
        },
      },
      {
        extends: true,
        test: {
          name: 'e2e',
          include: ['e2e/**/*.e2e.ts'],
          environment: 'node',
          globalSetup: ['e2e/global-setup.ts'],
          fileParallelism: false,
          // Two cancel-timing tests (data prepare cancel, model load cancel) failed once on a
          // fresh clone and pass on rerun; a retry keeps CI honest about real failures while the
          // races are made deterministic (see the open issues' notes).
          retry: 2,
          testTimeout: 180_000,
          hookTimeout: 180_000,
        },
      },
    ],
  },
});
