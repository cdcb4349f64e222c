/**
 * `tandem bench endpoints`: three endpoints, each behind its own shaped link, through a
 * degradation, a recovery and a failure of one of them (bench/endpoints.ts).
 */
import type { Command } from 'commander';
import { ValidationError } from '../src/errors/index.js';
import { loadBench } from './bench-loader.js';
import { intAtLeast } from './options.js';

function positive(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!(n > 0) || !Number.isFinite(n)) throw new ValidationError('CLI_ARGUMENT', `${flag} must be a positive number, got "${value}"`);
    return n;
  };
}

interface EndpointsCommandOptions {
  quick?: boolean;
  json?: boolean;
  prices?: string;
  out?: string;
  slowdown: number;
  window?: number;
  rounds?: number;
  deadline?: number;
}

/** Attaches `endpoints` to the shared `bench` command. */
export function registerEndpointsBenchCommand(bench: Command): void {
  bench
    .command('endpoints')
    .description('Three endpoints with their own links; one degrades, recovers, then fails: requests to switch, adaptive and cost planners against the per-step oracle')
    .option('--quick', 'a CI-size run (ResNet-18 at half width and 64 px, fewer requests)')
    .option('--prices <file>', 'JSON prices per endpoint: {"aws-frankfurt": {"instanceHour": 0.24, "egressPerGB": 0.09}, ...} (default: built-in)')
    .option('--out <dir>', 'where the report goes (default bench/results)')
    .option('--slowdown <factor>', 'edge slowdown factor', positive('--slowdown'), 8)
    .option('--window <n>', 'planner requests right after each change (default 10, --quick 5)', intAtLeast('--window', 1))
    .option('--rounds <n>', 'measured rounds per step (default 8, --quick 2)', intAtLeast('--rounds', 1))
    .option('--deadline <ms>', "the cost objective's deadline, ms (default 70% of the edge's time for the model)", positive('--deadline'))
    .option('--json', 'print one JSON object as the last line')
    .action(async (opts: EndpointsCommandOptions) => {
      const { runEndpointsBench, endpointsSummary } = await loadBench('endpoints', async () => ({ ...(await import('../bench/endpoints.js')), ...(await import('../bench/endpoints-report.js')) }));
      const { result, files } = await runEndpointsBench({
        quick: opts.quick ?? false,
        slowdown: opts.slowdown,
        ...(opts.prices !== undefined ? { pricesFile: opts.prices } : {}),
        ...(opts.out !== undefined ? { reportDir: opts.out } : {}),
        ...(opts.window !== undefined ? { switchWindow: opts.window } : {}),
        ...(opts.rounds !== undefined ? { rounds: opts.rounds } : {}),
        ...(opts.deadline !== undefined ? { deadlineMs: opts.deadline } : {}),
        log: (line) => process.stderr.write(`${line}\n`),
      });
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(endpointsSummary(result))}\n`);
        return;
      }
      process.stdout.write(
        `edge slowdown ×${result.slowdown}: at most ${result.maxRequestsToSwitch} requests to move after a change; worst adaptive/oracle ${result.adaptiveOverOracle.toFixed(3)}; worst cost/oracle ${result.costOverOracle.toFixed(3)}\nreport: ${files?.markdown ?? '-'}\nplots: ${(files?.png ?? []).join(' ')}\n`,
      );
    });
}
