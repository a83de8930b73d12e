import { defineConfig } from 'vite';

// The runner as one Node bundle (WGSL comes in through `?raw` imports, which only Vite resolves):
// dist-tune/tune.js, and quant-worker.js beside it for the export pool's worker_threads. Only
// `webgpu` (Dawn's native module) stays external.
export default defineConfig({
  publicDir: false,
  ssr: { noExternal: true, external: ['webgpu'] },
  build: {
    ssr: true,
    outDir: 'dist-tune',
    emptyOutDir: true,
    target: 'node20',
    rollupOptions: {
      input: { tune: 'tools/tune/cli.ts', 'quant-worker': 'src/io/quant-pool-node-worker.ts' },
      output: { entryFileNames: '[name].js', chunkFileNames: '[name]-[hash].js' },
    },
  },
  logLevel: 'warn',
});
