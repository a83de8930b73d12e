// npx tsx tools/mock-hub/cli.ts [--port 8787] [--host 127.0.0.1] [--root DIR]...
//   [--model owner/name=DIR]... [--dataset owner/name=DIR]... [--tree-page-size N] [--log]
//   [--uploads DIR]
// --root DIR adds DIR/models and DIR/datasets (default: tests/fixtures/hub). --uploads DIR keeps
// the repos that clients create and their uploads there (default: a temporary folder).
import { resolve } from 'node:path';
import { DEFAULT_ROOTS, startMockHub } from './server.ts';
import type { FixtureRoot, MockHubOptions } from './server.ts';

function parse(argv: string[]): MockHubOptions {
  const opts: MockHubOptions = { port: 8787 };
  const roots: FixtureRoot[] = [];
  const models: Record<string, string> = {};
  const datasets: Record<string, string> = {};
  const mount = (into: Record<string, string>, spec: string): void => {
    const eq = spec.indexOf('=');
    if (eq <= 0) throw new Error(`expected owner/name=DIR, got ${spec}`);
    into[spec.slice(0, eq)] = resolve(spec.slice(eq + 1));
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    if (flag === '--port') opts.port = Number(value());
    else if (flag === '--host') opts.host = value();
    else if (flag === '--root') {
      const dir = resolve(value());
      roots.push({ models: `${dir}/models`, datasets: `${dir}/datasets` });
    } else if (flag === '--model') mount(models, value());
    else if (flag === '--dataset') mount(datasets, value());
    else if (flag === '--tree-page-size') opts.treePageSize = Number(value());
    else if (flag === '--log') opts.log = true;
    else if (flag === '--uploads') opts.uploadsDir = resolve(value());
    else throw new Error(`unknown option ${flag}`);
  }
  opts.roots = roots.length > 0 ? roots : DEFAULT_ROOTS;
  opts.mounts = { models, datasets };
  return opts;
}

const hub = await startMockHub(parse(process.argv.slice(2)));
console.log(`mock hub: ${hub.url}  (dataset viewer: ${hub.datasetsServer})`);
console.log('tokens: hf_mock_ok (all access, writes as mock-user), hf_mock_noaccess (no gated/private, read-only),');
console.log('        hf_mock_write / hf_mock_read (mock-user, org mock-org), hf_mock_other (other-user); faults: POST /__mock/faults');
console.log(`uploads: ${hub.uploadsDir}`);
const stop = (): void => {
  hub.close().finally(() => process.exit(0));
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
