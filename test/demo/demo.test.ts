/**
 * `tandem demo` end to end, shortened: every request completes, every result is in the
 * emulated cloud store (S3, OSS, GCS) its class allows, each endpoint has its own link, and
 * the agent stops using Frankfurt once its link fails.
 */
import { describe, expect, it } from 'vitest';
import { runDemo } from '../../demo/demo.js';

describe('tandem demo', () => {
  it('completes every request as Frankfurt degrades and fails, every link is cut off, then restored, within residency', async () => {
    const lines: string[] = [];
    const { summary, rows } = await runDemo({ perPhase: 6, print: (l) => lines.push(l) });
    const out = lines.join('\n');
    expect(summary).toMatchObject({ requests: 24, completed: 24, lost: 0, residencyViolations: 0 });
    // Local and offload at least: the plan follows the network.
    const kinds = new Set(rows.map((r) => r.planKind));
    expect(kinds.size).toBeGreaterThanOrEqual(2);
    // Each endpoint behind its own link, at its own bandwidth and round trip.
    expect(out).toMatch(/sagemaker-frankfurt http:\/\/127\.0\.0\.1:\d+ \(1000 Mbit\/s, 4 ms\)/);
    expect(out).toMatch(/vertex-iowa http:\/\/127\.0\.0\.1:\d+ \(200 Mbit\/s, 30 ms\)/);
    expect(out).toMatch(/eas-shanghai http:\/\/127\.0\.0\.1:\d+ \(50 Mbit\/s, 80 ms\)/);
    expect(new Set(rows.map((r) => r.phase))).toEqual(new Set(['fast', 'fra slow', 'fra down', 'cut off', 'back']));
    // Once Frankfurt's link is down nothing completes there: a request sent there fell back.
    for (const r of rows.filter((row) => row.phase === 'fra down' && row.plan.includes('sagemaker-frankfurt'))) expect({ id: r.requestId, fellBack: r.fellBack }).toEqual({ id: r.requestId, fellBack: true });
    // While every link is cut nothing completes remotely: it is local, or a remote plan that fell back.
    for (const r of rows.filter((row) => row.phase === 'cut off')) expect({ id: r.requestId, plan: r.plan, ok: r.planKind === 'local' || r.fellBack }).toMatchObject({ ok: true });
    // Results in the emulated cloud stores (the demo reads each one back from its store before counting it).
    expect(out).toMatch(/result stores: s3-eu http:\/\/127\.0\.0\.1:\d+ \(S3, eu-central-1\), oss-cn http:\/\/127\.0\.0\.1:\d+ \(OSS, cn-shanghai\), gcs-us http:\/\/127\.0\.0\.1:\d+ \(GCS, us-central1\)/);
    const stores: Record<string, string> = { 'eu-personal': 's3-eu', 'cn-personal': 'oss-cn', unrestricted: 'gcs-us' };
    for (const r of rows) expect(r.store).toBe(stores[r.dataClass]);
    expect(Object.values(summary.stores).reduce((a, b) => a + b, 0)).toBe(24);
    expect(out).toContain('by plan:');
    expect(out).toMatch(/by network phase → where it ran:\n {2}fast .*\(all links nominal\)\n {2}fra slow .*\(sagemaker-frankfurt 8 Mbit\/s, 120 ms\)\n {2}fra down .*\(sagemaker-frankfurt cut off\)\n {2}cut off .*\(every link cut off\)/);
  });
});
