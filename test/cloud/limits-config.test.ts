/** The admission limits as options, variables and defaults (issue #31 item 3). */
import { totalmem } from 'node:os';
import { describe, expect, it } from 'vitest';
import { cloudOptionsFromEnv } from '../../cloud/config.js';
import { BodyBudget } from '../../cloud/limiter.js';
import { DEFAULT_MAX_BODY_BYTES, serviceSettings } from '../../cloud/options.js';
import { codeOf } from '../helpers/errors.js';

describe('admission limits', () => {
  it('come from their TANDEM_ variables, the command line first', () => {
    const o = cloudOptionsFromEnv({
      TANDEM_MAX_BODY_BYTES: '1000', TANDEM_MAX_JSON_BYTES: '500', TANDEM_BODY_BUDGET_BYTES: '4000', TANDEM_BODY_IDLE_TIMEOUT_MS: '300',
      TANDEM_MAX_CONNECTIONS: '10', TANDEM_MAX_CONNECTIONS_PER_IP: '3', TANDEM_HEADERS_TIMEOUT_MS: '2000', TANDEM_KEEP_ALIVE_TIMEOUT_MS: '7000',
      TANDEM_INLINE_JSON_BYTES: '100',
    }, { maxConnections: 99 });
    expect(o).toMatchObject({ maxBodyBytes: 1000, maxJsonBytes: 500, inlineJsonBytes: 100, bodyBudgetBytes: 4000, bodyIdleTimeoutMs: 300, maxConnections: 99, maxConnectionsPerIp: 3, headersTimeoutMs: 2000, keepAliveTimeoutMs: 7000 });
    expect(codeOf(() => cloudOptionsFromEnv({ TANDEM_MAX_CONNECTIONS: '0' }))).toBe('CLI_ARGUMENT');
    expect(codeOf(() => cloudOptionsFromEnv({ TANDEM_BODY_BUDGET_BYTES: 'lots' }))).toBe('CLI_ARGUMENT');
    expect(codeOf(() => cloudOptionsFromEnv({ TANDEM_INLINE_JSON_BYTES: '-1' }))).toBe('CLI_ARGUMENT');
    expect(cloudOptionsFromEnv({})).not.toHaveProperty('maxConnections');
  });

  it('default to a real server\'s: 1024 connections, 64 per address, a budget of a few bodies within a quarter of the memory', () => {
    const s = serviceSettings({ models: [], port: 0 });
    expect(s).toMatchObject({ maxConnections: 1024, maxConnectionsPerIp: 64, maxJson: 8 * 1024 * 1024, inlineJson: 64 * 1024, bodyIdleMs: 10_000, headersTimeoutMs: 10_000, keepAliveTimeoutMs: 65_000 });
    expect(s.bodyBudget).toBeGreaterThanOrEqual(DEFAULT_MAX_BODY_BYTES);
    expect(s.bodyBudget).toBeLessThanOrEqual(Math.max(DEFAULT_MAX_BODY_BYTES, totalmem() / 4));
    // A budget that cannot hold one largest body would refuse it on every retry.
    expect(codeOf(() => serviceSettings({ models: [], port: 0, maxBodyBytes: 1000, bodyBudgetBytes: 999 }))).toBe('CLOUD_OPTION');
    expect(codeOf(() => serviceSettings({ models: [], port: 0, maxConnectionsPerIp: 0 }))).toBe('CLOUD_OPTION');
    for (const bad of [0, 1.5, Number.NaN, 2 ** 60]) expect(codeOf(() => serviceSettings({ models: [], port: 0, inlineJsonBytes: bad }))).toBe('CLOUD_OPTION');
    expect(serviceSettings({ models: [], port: 0, maxBodyBytes: 1000 }).maxJson).toBe(1000);
  });

  it('the body budget refuses what does not fit now with 429, what never fits with 413, and counts its peak', () => {
    const b = new BodyBudget(100);
    b.reserve(60);
    expect(codeOf(() => b.reserve(50))).toBe('CLOUD_OVERLOADED');
    expect(codeOf(() => b.reserve(101))).toBe('CLOUD_TOO_LARGE');
    b.release(60);
    b.reserve(100);
    expect([b.inFlight, b.peak, b.refused]).toEqual([100, 100, 1]);
  });
});
