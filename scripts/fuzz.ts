/**
 * The long fuzzing run (issue #31): the properties of test/fuzz/*.fuzz.test.ts with far more
 * cases per target, the det and rec models included, then a table of cases, duration,
 * outcomes and findings per target, and how to replay each finding.
 *
 *   npm run fuzz                         # FUZZ_RUNS=2000 cases per cheap target
 *   npm run fuzz -- --runs 10000         # more
 *   npm run fuzz -- --runs 500 codec oip # some target files only (vitest filters)
 *
 * Environment passed through: FUZZ_CASE_MS (time limit of one case), FUZZ_SEED and FUZZ_PATH
 * (replay). Exits 1 when a target found something.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

interface TargetStats {
  target: string;
  cases: number;
  ms: number;
  outcomes: Record<string, number>;
  findings: number;
  failure?: { seed: number; path: string | null; counterexample: string; error: string };
}

function parseArgs(argv: string[]): { runs: string; filters: string[]; workers: string } {
  let runs = process.env['FUZZ_RUNS'] ?? '2000';
  let workers = '1';
  const filters: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--runs') runs = argv[++i] ?? runs;
    else if (a === '--workers') workers = argv[++i] ?? workers;
    else if (a === '--help' || a === '-h') {
      console.log('usage: npm run fuzz -- [--runs N] [--workers N] [FILE_FILTER...]');
      process.exit(0);
    } else filters.push(a);
  }
  if (!/^\d+$/.test(runs)) throw new Error(`--runs must be a positive integer, got ${runs}`);
  return { runs, filters, workers };
}

const { runs, filters, workers } = parseArgs(process.argv.slice(2));
const dir = mkdtempSync(join(tmpdir(), 'tandem-fuzz-'));
const reportFile = join(dir, 'report.jsonl');
const vitest = resolve('node_modules', 'vitest', 'vitest.mjs');
const started = performance.now();
console.log(`fuzzing with FUZZ_RUNS=${runs} (cheap targets; expensive ones take a fraction), ${workers} worker(s)…`);
const child = spawnSync(process.execPath, [vitest, 'run', ...(filters.length > 0 ? filters.map((f) => `test/fuzz/${f}`) : ['test/fuzz']), `--maxWorkers=${workers}`], {
  stdio: 'inherit',
  env: { ...process.env, FUZZ_LONG: '1', FUZZ_RUNS: runs, FUZZ_REPORT: reportFile },
});
const seconds = (performance.now() - started) / 1000;

const stats: TargetStats[] = existsSync(reportFile)
  ? readFileSync(reportFile, 'utf8').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as TargetStats)
  : [];
rmSync(dir, { recursive: true, force: true });

const pad = (s: string, n: number): string => (s.length >= n ? s : s + ' '.repeat(n - s.length));
const lpad = (s: string, n: number): string => (s.length >= n ? s : ' '.repeat(n - s.length) + s);
console.log('\n' + [pad('target', 26), lpad('cases', 7), lpad('seconds', 8), lpad('findings', 9), '  outcomes (ok = a result; codes = typed refusals)'].join(' '));
for (const s of stats.sort((a, b) => a.target.localeCompare(b.target))) {
  const outcomes = Object.entries(s.outcomes).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ');
  console.log([pad(s.target, 26), lpad(String(s.cases), 7), lpad((s.ms / 1000).toFixed(1), 8), lpad(String(s.findings), 9), ' ', outcomes].join(' '));
}
const total = stats.reduce((a, s) => a + s.cases, 0);
const findings = stats.filter((s) => s.findings > 0);
console.log(`\n${stats.length} targets, ${total} cases, ${findings.length} finding(s), ${seconds.toFixed(0)} s in all`);
for (const s of findings) {
  const f = s.failure!;
  console.log(`\nFINDING in ${s.target}: ${f.error}`);
  console.log(`  counterexample: ${f.counterexample}`);
  console.log(`  replay: FUZZ_LONG=1 FUZZ_RUNS=${runs} FUZZ_SEED=${f.seed}${f.path ? ` FUZZ_PATH=${f.path}` : ''} npx vitest run test/fuzz/<file> -t '<test name>' --maxWorkers=1`);
}
if (child.status !== 0 && findings.length === 0) console.log(`\nvitest exited with ${String(child.status ?? child.signal)} (see its output above)`);
process.exit(child.status === 0 && findings.length === 0 ? 0 : 1);
