// Keeps the tensor-core GEMM's checks from a benchmark run on a GPU with subgroup matrices as the
// fixture tests/matmul-mma.test.ts reads:  node tools/bench/mma-fixture.mjs BENCH.json
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';

const bench = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const report = bench.results.find((r) => r.op === 'mma-report');
if (!report || report.checks.length === 0) throw new Error(`${process.argv[2]} has no mma checks (run the bench with --only mma on a GPU with subgroup matrices)`);
const { description, vendor, architecture } = bench.gpu;
const out = { date: bench.date, gpu: { vendor, architecture, description }, digest: report.digest, compileErrors: report.compileErrors, checks: report.checks, lmHead: report.lmHead, rows: report.rows };
mkdirSync('tests/fixtures/mma', { recursive: true });
writeFileSync('tests/fixtures/mma/checks.json', JSON.stringify(out, null, 1) + '\n');
console.log(`tests/fixtures/mma/checks.json: ${report.checks.length} checks, digest ${report.digest}`);
