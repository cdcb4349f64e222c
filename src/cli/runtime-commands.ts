/**
 * `tandem profile` (per-cut timings for the planner) and `tandem bench overhead` (the edge
 * runtime's overhead and pool scaling).
 */
import type { Command } from 'commander';
import { ValidationError } from '../errors.js';

/** Parses repeated `NAME=D1,D2,...` options into a shape map. */
export function parseShapes(values: readonly string[]): Record<string, number[]> {
  const shapes: Record<string, number[]> = {};
  for (const value of values) {
    const match = /^([^=]+)=(\d+(?:,\d+)*)$/.exec(value.trim());
    if (!match) throw new ValidationError('CLI_SHAPE', `--shape expects NAME=D1,D2,..., got "${value}"`);
    shapes[match[1]!] = match[2]!.split(',').map(Number);
  }
  return shapes;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function positiveInt(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) throw new ValidationError('CLI_OPTION', `${name} expects a positive integer, got "${value}"`);
    return n;
  };
}

export function registerRuntimeCommands(_program: Command): void {
  // `tandem profile` is registered here once the graph toolkit is available.
}

/** Adds `overhead` to the shared `tandem bench` command. */
export function registerRuntimeBenchCommands(bench: Command): void {
  bench
    .command('overhead')
    .description('Edge runtime overhead on the local path vs a bare onnxruntime-node session.run, and pool throughput with 2 workers vs 1')
    .option('--model <path>', 'ONNX file or model package (default: the PP-OCRv4 text detector)')
    .option('--shape <name=dims>', 'input shape (default x=1,3,640,640)', collect, [])
    .option('--runs <n>', 'measured runs per side', positiveInt('--runs'), 30)
    .option('--threads <n>', 'intra-op threads for the overhead comparison', positiveInt('--threads'), 1)
    .option('--burst <n>', 'concurrent requests for the scaling measurement', positiveInt('--burst'), 12)
    .option('--rounds <n>', 'alternating 1-worker/2-worker burst rounds', positiveInt('--rounds'), 3)
    .option('--json', 'print {"localOverheadRatio", "poolScaling"} as JSON on the last line')
    .action(async (opts: { model?: string; shape: string[]; runs: number; threads: number; burst: number; rounds: number; json?: boolean }) => {
      const { runOverheadBench } = await import('../../bench/overhead.js');
      const shapes = Object.values(parseShapes(opts.shape));
      const result = await runOverheadBench({
        ...(opts.model ? { model: opts.model } : {}),
        ...(shapes[0] ? { shape: shapes[0] } : {}),
        runs: opts.runs,
        threads: opts.threads,
        burst: opts.burst,
        rounds: opts.rounds,
        log: (line) => process.stderr.write(`${line}\n`),
      });
      if (opts.json) process.stdout.write(`${JSON.stringify({ localOverheadRatio: result.localOverheadRatio, poolScaling: result.poolScaling })}\n`);
      else {
        process.stdout.write(`local overhead ratio: ${result.localOverheadRatio.toFixed(3)} (goal ≤ 1.05)\n`);
        process.stdout.write(`pool scaling 2 vs 1 workers: ${result.poolScaling.toFixed(2)}× (goal ≥ 1.8)\n`);
      }
    });
}
