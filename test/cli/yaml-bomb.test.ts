// Issue #31 item 9: a YAML alias bomb ("billion laughs") in a policy or edge.yaml escaped the
// loaders as "unexpected error: Excessive alias count" with exit 1. It is an invalid policy /
// invalid config like any other, with its code and exit 2.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseEdgeConfig } from '../../edge/config.js';
import { parsePolicy } from '../../src/residency/policy.js';
import { runCliInProcess } from '../helpers/cli.js';

/** Nine-fold aliases, five levels: 9^5 nodes from a few lines. */
const BOMB = [
  'a: &a [x, x, x, x, x, x, x, x, x]',
  'b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]',
  'c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]',
  'd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]',
  'e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]',
  '',
].join('\n');

const codeOf = (f: () => unknown): string | undefined => {
  try {
    f();
    return undefined;
  } catch (error) {
    return (error as { code?: string }).code;
  }
};

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tandem-yaml-'));
  await writeFile(join(dir, 'bomb.yaml'), BOMB);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('YAML alias bombs', () => {
  it('are typed errors of the policy and edge config parsers', () => {
    expect(codeOf(() => parsePolicy(BOMB, 'bomb.yaml'))).toBe('RESIDENCY_POLICY_INVALID');
    expect(codeOf(() => parseEdgeConfig(BOMB, 'bomb.yaml'))).toBe('EDGE_CONFIG_INVALID');
  });

  it('a policy that uses a few aliases still loads', async () => {
    const policy = await readFile('edge/policies/gdpr-frankfurt.yaml', 'utf8');
    expect(() => parsePolicy(policy)).not.toThrow();
    const aliased = [
      'version: 1',
      'classes:',
      '  health:',
      '    process: &eu [{ provider: aws, regions: [eu-central-1] }]',
      '    store: *eu',
      '  public:',
      '    process: *eu',
      '',
    ].join('\n');
    expect(parsePolicy(aliased).classes['public']!.process).toEqual([{ provider: 'aws', regions: ['eu-central-1'] }]);
  });

  it('`tandem policy check` exits 2 with RESIDENCY_POLICY_INVALID', async () => {
    const run = await runCliInProcess(['policy', 'check', join(dir, 'bomb.yaml')]);
    expect(run.code).toBe(2);
    expect(run.err).toContain('error RESIDENCY_POLICY_INVALID');
    expect(run.err).toContain('alias');
    expect(run.err).not.toContain('unexpected error');
  });

  it('`tandem edge run --config` exits 2 with EDGE_CONFIG_INVALID', async () => {
    const run = await runCliInProcess(['edge', 'run', '--config', join(dir, 'bomb.yaml')]);
    expect(run.code).toBe(2);
    expect(run.err).toContain('error EDGE_CONFIG_INVALID');
    expect(run.err).toContain('alias');
    expect(run.err).not.toContain('unexpected error');
  });
});
