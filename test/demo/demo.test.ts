/**
 * `tandem demo` end to end, shortened: every request completes, every result is in a store
 * its class allows, and the plan changes with the network.
 */
import { describe, expect, it } from 'vitest';
import { runDemo } from '../../demo/demo.js';

describe('tandem demo', () => {
  it('completes every request through fast, slow, cut-off and restored links, within residency', async () => {
    const lines: string[] = [];
    const { summary, rows } = await runDemo({ perPhase: 6, print: (l) => lines.push(l) });
    expect(summary).toMatchObject({ requests: 24, completed: 24, lost: 0, residencyViolations: 0 });
    // Local and offload at least: the plan follows the network.
    const kinds = new Set(rows.map((r) => r.planKind));
    expect(kinds.size).toBeGreaterThanOrEqual(2);
    // While the link is cut nothing completes remotely: it is local, or a remote plan that fell back.
    for (const r of rows.filter((row) => row.phase === 'cut off')) expect({ id: r.requestId, plan: r.plan, ok: r.planKind === 'local' || r.fellBack }).toMatchObject({ ok: true });
    const stores: Record<string, string> = { 'eu-personal': 'local-eu', 'cn-personal': 'local-cn', unrestricted: 'local-us' };
    for (const r of rows) expect(r.store).toBe(stores[r.dataClass]);
    expect(lines.join('\n')).toContain('by plan:');
    expect(Object.values(summary.stores).reduce((a, b) => a + b, 0)).toBe(24);
  });
});
