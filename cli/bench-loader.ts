/**
 * The `tandem bench` commands run code from bench/, which is built in a clone but left out of
 * the published package: there they fail with a usage error that says so, not a module crash.
 */
import { existsSync } from 'node:fs';
import { ValidationError } from '../src/errors/index.js';

/** bench/ next to cli/: the sources' under tsx, dist/bench under the compiled CLI. */
const BENCH_DIR = new URL('../bench/', import.meta.url);

/** Runs `load` (a dynamic import of a bench module) when bench/ is installed. */
export async function loadBench<T>(command: string, load: () => Promise<T>, benchDir: URL = BENCH_DIR): Promise<T> {
  if (!existsSync(benchDir)) {
    throw new ValidationError(
      'CLI_BENCH_UNAVAILABLE',
      `\`tandem bench ${command}\` needs the benchmarks, which the published package leaves out: run it from a clone of the repository`,
      { details: { command } },
    );
  }
  return load();
}
