/**
 * The `tandem` command. Each area registers its own subcommands; this file only wires them
 * and turns failures into one readable line with a stable code instead of a stack trace.
 */
import { Command, CommanderError } from 'commander';
import { errorInfo, isTandemError, ValidationError } from '../src/errors/index.js';
import { registerAgentCommands } from './agent-commands.js';
import { registerAuditCommands } from './audit-commands.js';
import { registerBatchCommand } from './batch-command.js';
import { registerGraphCommands } from './graph-commands.js';
import { registerGraphBenchCommands } from './graph-bench-commands.js';
import { registerCloudCommands } from './cloud-commands.js';
import { registerEdgeBenchCommand } from './edge-artifact/commands.js';
import { registerEndpointsBenchCommand } from './endpoints-bench-command.js';
import { registerPackageCommands } from './package-commands.js';
import { registerBenchCommand, registerPlannerCommands } from './planner-commands.js';
import { registerPruneBenchCommand, registerPruneCommands } from './prune-commands.js';
import { registerResidencyCommands } from './residency-commands.js';
import { registerRuntimeBenchCommands, registerRuntimeCommands } from './runtime-commands.js';

export function buildProgram(): Command {
  const program = new Command('tandem')
    .description('Edge-cloud collaborative inference: split ONNX models between edge and cloud.')
    .showHelpAfterError()
    .exitOverride();
  registerGraphCommands(program);
  registerPackageCommands(program);
  registerPlannerCommands(program);
  // `bench` first: the other areas attach their benchmarks to it.
  registerBenchCommand(program);
  registerAgentCommands(program);
  registerBatchCommand(program);
  registerCloudCommands(program);
  registerResidencyCommands(program);
  registerAuditCommands(program);
  registerRuntimeCommands(program);
  registerPruneCommands(program);
  // Attach to the shared `bench` parent; create it only if no area has.
  registerRuntimeBenchCommands(program.commands.find((c) => c.name() === 'bench') ?? program.command('bench').description('benchmarks'));
  registerGraphBenchCommands(program.commands.find((c) => c.name() === 'bench')!);
  registerEdgeBenchCommand(program.commands.find((c) => c.name() === 'bench') ?? program.command('bench').description('benchmarks'));
  registerEndpointsBenchCommand(program.commands.find((c) => c.name() === 'bench')!);
  registerPruneBenchCommand(program.commands.find((c) => c.name() === 'bench')!);
  return program;
}

/** Runs the CLI and resolves to the process exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync([...argv]);
    return 0;
  } catch (error) {
    return reportFailure(error);
  }
}

function reportFailure(error: unknown): number {
  if (error instanceof CommanderError) {
    // commander has already printed help or the usage error.
    return error.exitCode === 0 ? 0 : 2;
  }
  if (isTandemError(error)) {
    process.stderr.write(`tandem: error ${error.code}: ${error.message}\n`);
    // A usage error (exit 2): the CLI's own refusal, or any input that fails validation.
    return errorInfo(error.code).area === 'cli' || error instanceof ValidationError ? 2 : 1;
  }
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`tandem: unexpected error: ${message}\n`);
  if (process.env['TANDEM_DEBUG'] && error instanceof Error) process.stderr.write(`${error.stack ?? ''}\n`);
  return 1;
}
