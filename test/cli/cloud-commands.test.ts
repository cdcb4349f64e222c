import { afterEach, describe, expect, it, vi } from 'vitest';
import { main } from '../../cli/main.js';

function captureStdout(): { lines: () => string[]; restore: () => void } {
  const chunks: string[] = [];
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    chunks.push(String(chunk));
    return true;
  });
  return { lines: () => chunks.join('').trim().split('\n'), restore: () => spy.mockRestore() };
}

afterEach(() => vi.restoreAllMocks());

describe('tandem bench / cloud commands', () => {
  it('bench codec --json prints the throughput as JSON on the last line', async () => {
    const out = captureStdout();
    const code = await main(['node', 'tandem', 'bench', 'codec', '--json', '--iterations', '3']);
    out.restore();
    expect(code).toBe(0);
    const last = JSON.parse(out.lines().at(-1) ?? '{}') as { encodeDecodeGBps: number; tensorBytes: number };
    expect(last.tensorBytes).toBe(4 * 1024 * 1024);
    expect(last.encodeDecodeGBps).toBeGreaterThan(0);
  });

  it('cloud serve rejects a bad port and a lone TLS key with a usage error', async () => {
    const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    expect(await main(['node', 'tandem', 'cloud', 'serve', '--port', 'abc'])).toBe(2);
    expect(await main(['node', 'tandem', 'cloud', 'serve', '--port', '0', '--models', '.', '--tls-key', 'k.pem'])).toBe(2);
    expect(err.mock.calls.map((c) => String(c[0])).join('')).toMatch(/--tls-key and --tls-cert go together/);
  });
});
