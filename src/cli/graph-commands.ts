import type { Command } from 'commander';

export function registerGraphCommands(_program: Command): void {
  // `inspect` and `split` land with the graph toolkit.
}
