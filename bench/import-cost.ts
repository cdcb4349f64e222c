/**
 * What `import('tandem')` costs at process start: the built package root (`dist/src/index.js`,
 * run `npm run build` first) imported in N fresh Node processes, one after another.
 *   npx tsx bench/import-cost.ts [--runs N] [--dist DIR]
 * Prints one JSON line: median/min/max milliseconds from the start of the dynamic import to
 * the module namespace being ready (Node's own start-up is not included).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { promisify } from 'node:util';

const run = promisify(execFile);
const { values } = parseArgs({ options: { runs: { type: 'string', default: '9' }, dist: { type: 'string', default: 'dist' } } });
const runs = Number(values.runs);
const entry = resolve(values.dist, 'src/index.js');
if (!existsSync(entry)) throw new Error(`${entry} does not exist: run npm run build first`);

const probe = `const t = performance.now(); await import(${JSON.stringify(pathToFileURL(entry).href)}); console.log(performance.now() - t);`;
const ms: number[] = [];
for (let i = 0; i < runs; i++) {
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', probe], { env: { ...process.env, NODE_OPTIONS: '' } });
  ms.push(Number(stdout.trim()));
}
ms.sort((a, b) => a - b);
const round = (x: number): number => Math.round(x * 10) / 10;
console.log(JSON.stringify({ entry: values.dist, runs, medianMs: round(ms[Math.floor((runs - 1) / 2)] ?? NaN), minMs: round(ms[0] ?? NaN), maxMs: round(ms.at(-1) ?? NaN) }));
