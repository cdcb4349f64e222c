/**
 * The trace bench's report (written by bench/trace.ts): the Markdown table with the worst
 * convergence, the JSON and the plot, from a hand-made result.
 */
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeTraceReport, type TraceResult } from '../../bench/trace.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('trace report', () => {
  it('writes the table, the JSON and the plot', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tandem-trace-report-'));
    dirs.push(dir);
    const result: TraceResult = {
      maxRequestsToConverge: 3,
      slowdown: 8,
      model: 'resnet18',
      notes: ['a note'],
      steps: [
        { label: 'start', bandwidthMbit: 50, rttMs: 20, oracleMs: 110, oraclePlan: 'offload→cloud', requestsToConverge: 1, requests: [{ plan: 'offload→cloud', ms: 112, planMeanMs: 110 }] },
        { label: 'step 50→2', bandwidthMbit: 2, rttMs: 20, oracleMs: 300, oraclePlan: 'local', requestsToConverge: 3, requests: [{ plan: 'offload→cloud', ms: 900, planMeanMs: 880 }, { plan: 'local', ms: 301, planMeanMs: 300 }] },
      ],
    };
    const files = await writeTraceReport(result, dir);
    const md = await readFile(files.markdown, 'utf8');
    expect(md).toContain('after a change to come within 10% of the oracle (three in a row): **3**');
    expect(md).toContain('| step 50→2 | 2 | 20 | local | 300.0 | 3 | offload→cloud, local |');
    expect(JSON.parse(await readFile(join(dir, 'trace.json'), 'utf8'))).toEqual(result);
    for (const f of [...files.svg, ...files.png]) expect((await stat(f)).size).toBeGreaterThan(1000);
  }, 30_000);
});
