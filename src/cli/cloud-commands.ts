/**
 * `tandem cloud serve`, `tandem bench codec` and `tandem bench cloud-overhead`.
 */
import type { Command } from 'commander';
import { ValidationError } from '../errors.js';

function writeResult(json: boolean, result: Record<string, unknown>, human: string): void {
  if (json) process.stdout.write(`${JSON.stringify(result)}\n`);
  else process.stdout.write(`${human}\n`);
}

function positiveInt(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n <= 0) throw new ValidationError('CLI_ARGUMENT', `${name} must be a positive integer, got "${value}"`);
    return n;
  };
}

/** Attaches `codec` and `cloud-overhead` to a shared `bench` command. */
export function registerCloudBenchCommands(bench: Command): void {
  bench.command('codec')
    .description('encode+decode throughput of the tensor wire format for a 4 MB float32 tensor')
    .option('--json', 'print the result as JSON on the last line')
    .option('--iterations <n>', 'timed iterations', positiveInt('--iterations'), 50)
    .action(async (opts: { json?: boolean; iterations: number }) => {
      const { runCodecBench } = await import('../../bench/codec.js');
      const r = runCodecBench({ iterations: opts.iterations });
      writeResult(opts.json === true, { ...r }, `codec: ${r.tensorBytes} B float32, encode ${r.encodeMs.toFixed(3)} ms, decode ${r.decodeMs.toFixed(3)} ms, ${r.encodeDecodeGBps.toFixed(2)} GB/s encode+decode`);
    });
}

/** Registers `cloud serve`, and `bench` with the cloud benchmarks unless `bench` exists already. */
export function registerCloudCommands(program: Command): void {
  const existing = program.commands.find((c) => c.name() === 'bench');
  const bench = existing ?? program.command('bench').description('benchmarks');
  registerCloudBenchCommands(bench);
}
