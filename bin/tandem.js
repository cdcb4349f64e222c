#!/usr/bin/env node
// The published entry point runs the compiled CLI; `npm ci` builds it through the `prepare` script.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const compiled = fileURLToPath(new URL('../dist/cli/entry.js', import.meta.url));
if (!existsSync(compiled)) {
  process.stderr.write('tandem: the CLI is not built yet; run `npm run build` (npm ci does it through `prepare`).\n');
  process.exit(70);
}
await import(compiled);
