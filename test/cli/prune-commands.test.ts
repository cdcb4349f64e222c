/**
 * `tandem prune`'s allocation options are checked before any work: a bad value is a usage
 * error (exit 2) naming the option, and nothing is written.
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tandem-cli-prune-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('tandem prune options', () => {
  it.each([
    [['--loss-floor', '-0.1'], '--loss-floor'],
    [['--loss-floor', 'abc'], '--loss-floor'],
    [['--sensitivity-images', '0'], '--sensitivity-images'],
    [['--cost', 'bytes'], '--cost'],
    [['--allocation', 'random'], '--allocation'],
  ])('refuses %j', async (args, flag) => {
    const out = join(dir, 'out');
    const result = await runCli(['prune', join(dir, 'pkg'), '--calib', join(dir, 'calib'), '--keep', '0.7', '--out', out, ...args]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(flag);
    expect(await stat(out).then(() => true, () => false)).toBe(false);
  });
});
