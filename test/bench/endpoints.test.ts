/**
 * `tandem bench endpoints` in a tiny quick mode, end to end over the real system: three OIP
 * endpoints, each behind its own shaper in front of one in-process cloud service, through a
 * degradation, a recovery and a failure of aws-frankfurt. Asserts structure and invariants,
 * not timings.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ENDPOINTS, runEndpointsBench, STEPS } from '../../bench/endpoints.js';
import { endpointsSummary } from '../../bench/endpoints-report.js';

const FAILING = 'aws-frankfurt';

describe('bench endpoints (quick)', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('measures every step over per-endpoint links and fails over without serving from the failed endpoint', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tandem-endpoints-test-'));
    dirs.push(dir);
    const { result, files } = await runEndpointsBench({ quick: true, switchWindow: 3, rounds: 1, maxCuts: 2, slowdown: 4, reportDir: dir });

    // The documented last line.
    const summary = JSON.parse(JSON.stringify(endpointsSummary(result))) as Record<string, unknown>;
    expect(Object.keys(summary).slice(0, 4)).toEqual(['maxRequestsToSwitch', 'adaptiveOverOracle', 'costOverOracle', 'steps']);
    expect(result.steps.map((s) => s.label)).toEqual(STEPS.map((s) => s.label));
    expect(Number.isInteger(result.maxRequestsToSwitch) && result.maxRequestsToSwitch >= 1).toBe(true);
    expect(result.maxRequestsToSwitch).toBe(Math.max(...result.steps.slice(1).map((s) => s.requestsToSwitch)));
    expect(result.adaptiveOverOracle).toBe(Math.max(...result.steps.map((s) => s.adaptiveOverOracle)));

    for (const step of result.steps) {
      const name = step.label;
      expect(step.plans.length, name).toBeGreaterThanOrEqual(2);
      // The oracle is the fastest measured fixed plan of its step.
      expect(step.plans.map((p) => p.plan), name).toContain(step.oraclePlan);
      for (const p of step.plans) expect(step.oracleMs, `${name}: ${p.plan}`).toBeLessThanOrEqual(p.ms);
      expect(step.oracleMs).toBeGreaterThan(0);
      expect(step.adaptiveOverOracle).toBeCloseTo(step.adaptiveSteadyMs / step.oracleMs, 9);
      // Window + one round: every planner request is recorded.
      expect(step.requests).toHaveLength(4);
      expect(step.cost.plans).toHaveLength(4);
      expect(step.cost.deadlineMet).toBeGreaterThanOrEqual(0);
      for (const p of step.plans) expect(p.price >= 0 && (p.plan === 'local') === (p.price === 0), `${name}: ${p.plan} ${p.price}`).toBe(true);
    }

    // Links are per endpoint: frankfurt's degraded link (4 Mbit/s, 150 ms) is never the fastest
    // while the others keep theirs, and Shanghai's slow one never beats Frankfurt's nominal one.
    const [baseline, degrades, , fails] = result.steps;
    expect(degrades!.oraclePlan).not.toContain(`→${FAILING}`);
    expect(baseline!.oraclePlan).not.toContain('→ali-shanghai');

    // After the failure: no fixed plan to the failed endpoint is measured, and every planner
    // request sent there fell back to the edge; none was served by it.
    expect(fails!.links[FAILING]?.down).toBe(true);
    expect(fails!.plans.some((p) => p.plan.endsWith(`→${FAILING}`))).toBe(false);
    for (const r of fails!.requests.filter((q) => q.plan.endsWith(`→${FAILING}`))) expect(r.fellBack).toBe(true);
    expect(fails!.servedByFailed).toBe(0);
    expect(fails!.oraclePlan).not.toContain(`→${FAILING}`);

    expect(result.endpoints).toEqual([...ENDPOINTS]);
    expect(files && existsSync(files.markdown) && files.png.every((f) => existsSync(f))).toBe(true);
  }, 240_000);
});
