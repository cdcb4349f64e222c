/**
 * The benchmark harness end to end over the real system: Tandem's runtime on the edge (with
 * its slowdown), Tandem's cloud service on loopback behind the shaper, the PAI-EAS provider
 * client (the Tandem tensor payload), the adaptive planner as the runtime's chooser — one tiny
 * sweep point, with round-1 measured beside it.
 */
import { describe, expect, it } from 'vitest';
import { runSweep } from '../../bench/sweep.js';
import { MODELS, Testbed, ENDPOINT } from '../../bench/harness/testbed.js';

describe('bench harness over the real runtime and cloud service', () => {
  it('runs one sweep point end to end and reports every strategy', async () => {
    const { result } = await runSweep({
      models: ['mobilenetv2'], bandwidthsMbit: [20], rttsMs: [10], rounds: 2, adaptiveWarmup: 1, maxCuts: 2, slowdown: 2, reportDir: false, variants: false,
    });
    expect(result.points).toHaveLength(1);
    const p = result.points[0]!;
    for (const ms of [p.edgeOnlyMs, p.cloudOnlyMs, p.staticMs, p.adaptiveMs, p.oracleMs]) {
      expect(ms).toBeGreaterThan(0);
      expect(Number.isFinite(ms)).toBe(true);
    }
    expect(p.oracleMs).toBeLessThanOrEqual(Math.min(p.edgeOnlyMs, p.cloudOnlyMs));
    expect(p.adaptivePlans).toHaveLength(2);
    expect(p.round1Plans).toHaveLength(2);
    expect(result.geomeanSpeedupOverRound1).toBeCloseTo(p.speedupOverRound1 ?? Number.NaN, 9);
    // Pooled means: the better fixed strategy's includes its own requests, so it is finite and
    // no worse than the pooled best; adaptive's choice figure is charged against both.
    expect(Number.isFinite(p.bestFixedChoiceMs ?? Number.NaN)).toBe(true);
    expect(p.bestFixedChoiceMs).toBeGreaterThanOrEqual(p.oracleChoiceMs ?? Number.POSITIVE_INFINITY);
    expect(result.choiceOverBestFixed).toBeCloseTo((p.adaptiveChoiceMs ?? 0) / (p.bestFixedChoiceMs ?? 1), 9);
    expect(result.slowdown).toBe(2);
  }, 60_000);

  it('executes remote plans through the shaped link: offload sends the input and the service reports its compute', async () => {
    const testbed = await Testbed.create({ slowdown: 1, maxCuts: 1, models: [MODELS['mobilenetv2']!], profileRuns: 1, calibrationImages: 1 });
    try {
      const m = await testbed.prepare(MODELS['mobilenetv2']!);
      testbed.setLink(10e6, 40);
      // The first release's form: the decoded tensor goes on the wire.
      const obs = await testbed.execute(m.name, { kind: 'offload', endpoint: ENDPOINT }, 'tensor');
      expect(obs.fellBack).toBe(false);
      expect(obs.bytesSent).toBeGreaterThan(224 * 224 * 3 * 4);
      expect(obs.remoteMs).toBeGreaterThan(0);
      // 600 KB at 10 Mbit/s is about 480 ms on the wire, plus the 40 ms round trip.
      expect(obs.networkMs).toBeGreaterThan(450);
      const probe = await testbed.probeLink(128 * 1024);
      expect(probe).toBeGreaterThan(100);
      expect(testbed.fallbacks).toBe(0);
    } finally {
      await testbed.close();
    }
  }, 60_000);
});
