// Builds the benchmark into one file (dist-bench/bench.js; only `webgpu` stays external, so the
// bundle also runs on the GPU machine, which has no node_modules) and runs it with the given args.
import { execFileSync } from 'node:child_process';

execFileSync('npx', ['vite', 'build', '--config', 'tools/bench/vite.bench.config.ts'], { stdio: 'inherit' });
if (!process.argv.includes('--build-only')) {
  execFileSync(process.execPath, ['dist-bench/bench.js', ...process.argv.slice(2)], { stdio: 'inherit' });
}
