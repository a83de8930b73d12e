// Keeps the tensor-core attention's checks from a benchmark run on a GPU with subgroup matrices as
// the fixture tests/attention-mma.test.ts reads:  node tools/bench/attention-mma-fixture.mjs BENCH.json
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';

const bench = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const report = bench.results.find((r) => r.op === 'attention-mma-checks');
if (!report || !report.checks.some((c) => c.tensorCores)) throw new Error(`${process.argv[2]} has no tensor-core attention checks (run the bench with --only attn on a GPU with subgroup matrices)`);
const { description, vendor, architecture } = bench.gpu;
const out = { date: bench.date, gpu: { vendor, architecture, description }, digest: report.digest, checks: report.checks };
mkdirSync('tests/fixtures/attention-mma', { recursive: true });
writeFileSync('tests/fixtures/attention-mma/checks.json', JSON.stringify(out, null, 1) + '\n');
console.log(`tests/fixtures/attention-mma/checks.json: ${report.checks.length} checks, digest ${report.digest}`);
