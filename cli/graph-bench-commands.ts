/**
 * `tandem bench inspect-scale`: inspect time and peak RSS against model size (bench/inspect-scale.ts).
 */
import type { Command } from 'commander';
import { ValidationError } from '../src/errors/index.js';
import { loadBench } from './bench-loader.js';

function sizesOption(value: string): number[] {
  const sizes = value.split(',').map((v) => Number(v.trim()));
  if (sizes.length === 0 || sizes.some((n) => !Number.isSafeInteger(n) || n < 0)) {
    throw new ValidationError('CLI_OPTION', `--sizes must be comma-separated non-negative integers, got "${value}"`);
  }
  return sizes;
}

/** Attaches `inspect-scale` to the shared `bench` command. */
export function registerGraphBenchCommands(bench: Command): void {
  bench.command('inspect-scale')
    .description('tandem inspect time and peak RSS against node count: MobileNetV2 plus N Identity nodes, one process per size')
    .option('--sizes <n,n,...>', 'Identity nodes to add (default 2000,5000,10000,20000,50000,100000,200000)', sizesOption)
    .option('--json', 'print the result as JSON on the last line')
    .action(async (opts: { sizes?: number[]; json?: boolean }) => {
      const { runInspectScaleBench } = await loadBench('inspect-scale', () => import('../bench/inspect-scale.js'));
      const log = (line: string): void => void process.stderr.write(`${line}\n`);
      const r = await runInspectScaleBench({ ...(opts.sizes ? { sizes: opts.sizes } : {}), log });
      if (opts.json) process.stdout.write(`${JSON.stringify(r)}\n`);
      else for (const p of r.points) process.stdout.write(`${p.nodes} nodes: ${p.ms} ms, peak RSS ${p.peakRssMB} MB, ${p.cuts} cuts\n`);
    });
}
