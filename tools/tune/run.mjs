// `npm run tune -- ARGS`: builds the runner (dist-tune/, see vite.tune.config.ts) and runs it with
// ARGS, passing its output and exit code through. TUNE_SKIP_BUILD=1 runs the last build as it is.
import { execFileSync, spawnSync } from 'node:child_process';

if (!process.env.TUNE_SKIP_BUILD) {
  // The build's own messages go to stderr: stdout carries only the runner's JSON lines.
  execFileSync('npx', ['vite', 'build', '--config', 'tools/tune/vite.tune.config.ts'], { stdio: ['ignore', 2, 'inherit'] });
}
// Ctrl-C reaches the runner too (same process group): it stops after the step and exits itself.
process.on('SIGINT', () => undefined);
const run = spawnSync(process.execPath, ['dist-tune/tune.js', ...process.argv.slice(2)], { stdio: 'inherit' });
process.exit(run.status ?? (run.signal === 'SIGINT' ? 130 : 1));
