import { defineConfig } from 'vite';

export default defineConfig({
  publicDir: false,
  ssr: { noExternal: true, external: ['webgpu'] },
  build: {
    ssr: true,
    outDir: 'dist-bench',
    emptyOutDir: true,
    target: 'node20',
    // quant-worker.js: the export pool's worker_threads script (tools/bench/export.ts), next to bench.js.
    rollupOptions: {
      input: { bench: 'tools/bench/bench.ts', 'quant-worker': 'src/io/quant-pool-node-worker.ts' },
      output: { entryFileNames: '[name].js', chunkFileNames: '[name]-[hash].js' },
    },
  },
  logLevel: 'warn',
});
