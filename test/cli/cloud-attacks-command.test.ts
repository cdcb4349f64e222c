/** `tandem bench cloud-attacks` and the admission flags of `tandem cloud serve` (issue #31 item 3). */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { main } from '../../cli/main.js';

afterEach(() => vi.restoreAllMocks());

describe('tandem bench cloud-attacks', () => {
  it('refuses an unknown attack and a non-positive limit with a usage error', async () => {
    const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    expect(await main(['node', 'tandem', 'bench', 'cloud-attacks', '--attacks', 'half-sent-bodies,bogus'])).toBe(2);
    expect(await main(['node', 'tandem', 'cloud', 'serve', '--port', '0', '--max-connections-per-ip', '0'])).toBe(2);
    const text = err.mock.calls.map((c) => String(c[0])).join('');
    expect(text).toMatch(/unknown bogus/);
    expect(text).toMatch(/--max-connections-per-ip/);
  });

  it('--json reports /ping latency, the service\'s peak RSS and the attackers\' outcomes per attack', async () => {
    const chunks: string[] = [];
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      chunks.push(String(chunk));
      return true;
    });
    const code = await main(['node', 'tandem', 'bench', 'cloud-attacks', '--json', '--duration-ms', '500', '--connections', '40', '--attacks', 'trickling-connections', '--attacker-nice', '0']);
    expect(code).toBe(0);
    const r = JSON.parse(chunks.join('').trim().split('\n').at(-1) ?? '{}') as { attackerNice: number; results: { attack: string; pings: number; maxMs: number; peakRssMb: number; outcomes: Record<string, number> }[] };
    expect(r.results.map((a) => a.attack)).toEqual(['idle', 'trickling-connections']);
    // This test's own thread keeps its priority.
    expect(r.attackerNice).toBe(0);
    const attack = r.results[1]!;
    expect(attack.pings).toBeGreaterThan(0);
    expect(attack.maxMs).toBeGreaterThan(0);
    expect(attack.peakRssMb).toBeGreaterThan(0);
    // 40 connections from 40 addresses: under every cap, all still open at the end.
    expect(attack.outcomes['open']).toBe(40);
  }, 60_000);
});
