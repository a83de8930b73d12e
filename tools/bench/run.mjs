// Builds the benchmark into one file (dist-bench/bench.js; only `webgpu` stays external, so the
// bundle also runs on the GPU machine, which has no node_modules) and runs it with the given args.
// `--only data` (alone or with GPU sections) also runs the data bench (tools/bench/data.ts): CPU
// only, run from the TypeScript sources, since its tokenize workers are worker_threads; its own
// options start with --data-.
import { execFileSync } from 'node:child_process';

const args = process.argv.slice(2);
const at = args.indexOf('--only');
const only = at >= 0 ? (args[at + 1] ?? '').split(',') : null;
const dataOnly = (a) => a.startsWith('--data-');

const gpuSections = only?.filter((s) => s !== 'data');
if (only?.includes('data')) {
  // --json FILE goes to the data bench when it runs alone (with GPU sections: --data-json FILE).
  const json = gpuSections.length === 0 && at >= 0 && args.includes('--json') ? ['--data-json', args[args.indexOf('--json') + 1]] : [];
  const dataArgs = args.filter((a, i) => dataOnly(a) || dataOnly(args[i - 1] ?? ''));
  execFileSync(process.execPath, ['--import', 'tsx', 'tools/bench/data.ts', ...dataArgs, ...json], { stdio: 'inherit' });
}
if (!only || gpuSections.length > 0) {
  const gpuArgs = args.filter((a, i) => !dataOnly(a) && !dataOnly(args[i - 1] ?? ''));
  if (gpuSections) gpuArgs[gpuArgs.indexOf('--only') + 1] = gpuSections.join(',');
  execFileSync('npx', ['vite', 'build', '--config', 'tools/bench/vite.bench.config.ts'], { stdio: 'inherit' });
  if (!args.includes('--build-only')) {
    execFileSync(process.execPath, ['dist-bench/bench.js', ...gpuArgs], { stdio: 'inherit' });
  }
}
