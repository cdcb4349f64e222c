/**
 * Entry point of the packaged edge agent (`node app/tandem-edge.js edge run --config edge.yaml`).
 * It registers only `tandem edge`'s commands, so the bundle holds the agent and the library
 * parts it runs, not the cloud service, the benchmarks or the other commands.
 */
import { Command, CommanderError } from 'commander';
import { errorInfo, isTandemError, ValidationError } from '../../src/errors/index.js';
import { registerAgentCommands } from '../agent-commands.js';

async function main(argv: readonly string[]): Promise<number> {
  const program = new Command('tandem-edge').description('Tandem edge agent (packaged)').showHelpAfterError().exitOverride();
  registerAgentCommands(program);
  try {
    await program.parseAsync([...argv]);
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    if (isTandemError(error)) {
      process.stderr.write(`tandem-edge: error ${error.code}: ${error.message}\n`);
      return errorInfo(error.code).area === 'cli' || error instanceof ValidationError ? 2 : 1;
    }
    process.stderr.write(`tandem-edge: unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    return 1;
  }
}

process.exitCode = await main(process.argv);
