import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { syntheticProfile } from '../../bench/planner-decision.js';
import { writeSweepReport, type SweepPoint } from '../../bench/report.js';
import { runCliInProcess } from '../helpers/cli.js';

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tandem-planner-'));
  await writeFile(join(dir, 'profile.json'), JSON.stringify(syntheticProfile(6, ['eu', 'us'])));
  await writeFile(join(dir, 'bad.json'), JSON.stringify({ version: 2 }));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const run = runCliInProcess;

describe('tandem plan', () => {
  it('ranks the options with their predicted times as JSON on the last line', async () => {
    const fast = await run(['plan', join(dir, 'profile.json'), '--bandwidth', '1gbit', '--rtt', '5ms', '--json', '--top', '0']);
    expect(fast.code).toBe(0);
    const result = JSON.parse(fast.out.trim().split('\n').pop() as string);
    expect(result.bandwidthMbit).toBe(1000);
    expect(result.rttMs).toBe(5);
    // 1 local + 2 endpoints × (offload + 6 splits)
    expect(result.options).toHaveLength(15);
    expect(result.options[0].kind).toBe('offload');
    const totals = result.options.map((o: { totalMs: number }) => o.totalMs);
    expect(totals).toEqual([...totals].sort((a: number, b: number) => a - b));
    const slow = await run(['plan', join(dir, 'profile.json'), '--bandwidth', '100kbit', '--rtt', '200ms', '--endpoints', 'eu', '--json']);
    expect(JSON.parse(slow.out.trim()).options[0].plan).toBe('local');
  });

  it('prints a table without --json and fails cleanly on bad input', async () => {
    const table = await run(['plan', join(dir, 'profile.json')]);
    expect(table.out).toMatch(/rank\s+plan/);
    expect(table.out).toMatch(/local/);
    const bad = await run(['plan', join(dir, 'bad.json')]);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/tandem: error PROFILE_INVALID/);
    const unit = await run(['plan', join(dir, 'profile.json'), '--rtt', 'soon']);
    expect(unit.code).toBe(2);
    expect(unit.err).toMatch(/PLANNER_BAD_UNIT/);
    const missing = await run(['plan', join(dir, 'nope.json')]);
    expect(missing.code).not.toBe(0);
  });
});

describe('tandem bench planner', () => {
  it('prints the decision time as {"decisionMicros": …} on the last line', async () => {
    const r = await run(['bench', 'planner', '--cuts', '20', '--endpoints', '2', '--max-time', '0.2', '--json']);
    expect(r.code).toBe(0);
    const last = JSON.parse(r.out.trim().split('\n').pop() as string);
    expect(last.decisionMicros).toBeGreaterThan(0);
    expect(last.options).toBe(1 + 2 * 21);
  });
});

describe('sweep report', () => {
  it('writes the Markdown table, SVG and PNG plots, stating the slowdown factor', async () => {
    const points: SweepPoint[] = [];
    for (const bw of [2, 10, 50]) {
      points.push({
        model: 'm', bandwidthMbit: bw, rttMs: 20, edgeOnlyMs: 200, cloudOnlyMs: 5000 / bw, staticMs: 200, adaptiveMs: 120, oracleMs: 110,
        oraclePlan: bw >= 50 ? 'offload→cloud' : bw >= 10 ? 'split@c3→cloud' : 'local', adaptivePlan: 'local', oracleEdgeShare: 0.5, adaptiveEdgeShare: 0.5, staticPlan: 'local',
      });
    }
    const files = await writeSweepReport({ adaptiveOverOracle: 1.09, adaptiveOverBestFixed: 1, points, slowdown: 8, quick: true, notes: ['note'] }, join(dir, 'results'));
    const md = await readFile(files.markdown, 'utf8');
    expect(md).toMatch(/slowdown factor: \*\*×8\*\*/);
    expect(md).toMatch(/offload → split between 50 and 10 Mbit\/s; split → local between 10 and 2 Mbit\/s/);
    const svg = await readFile(files.svg[0] as string, 'utf8');
    expect(svg).toMatch(/^<svg/);
    expect(svg).toMatch(/Tandem adaptive/);
    const png = await readFile(files.png[0] as string);
    expect(png.subarray(1, 4).toString()).toBe('PNG');
  });
});
