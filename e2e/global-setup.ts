// Serves the built app (dist/, from `vite build`) and the mock Hub for the e2e suite.
import { existsSync } from 'node:fs';
import { preview } from 'vite';
import type { TestProject } from 'vitest/node';
import { startMockHub } from '../tools/mock-hub/server.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    appUrl: string;
    hubUrl: string;
  }
}

export default async function setup(project: TestProject) {
  if (!existsSync('dist/index.html')) throw new Error('e2e needs the built app: run `vite build` first (npm run test:e2e does)');
  const app = await preview({ preview: { host: '127.0.0.1', port: 0, strictPort: false, open: false }, logLevel: 'warn' });
  const appUrl = app.resolvedUrls?.local[0];
  if (!appUrl) throw new Error('vite preview did not report a URL');
  const hub = await startMockHub({ mounts: { models: { 'webtune/demo-tiny-llama': 'public/demo/model' } } });
  project.provide('appUrl', appUrl);
  project.provide('hubUrl', hub.url);
  return async () => {
    await hub.close();
    await new Promise<void>((resolve) => app.httpServer.close(() => resolve()));
  };
}
