import { afterEach, describe, expect, it, vi } from 'vitest';
import { main } from '../../cli/main.js';
import { spawnCli } from '../helpers/cli.js';
import { modelsDir } from '../helpers/cloud.js';

/** `tandem cloud serve` with `flags` on two models: the partitions it holds once it listens. */
async function partitionsAtStart(flags: string[]): Promise<number> {
  const models = modelsDir();
  const child = spawnCli(['cloud', 'serve', '--port', '0', '--host', '127.0.0.1', '--models', models.dir, '--log-level', 'warn', ...flags]);
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  try {
    const started = Date.now();
    let m: RegExpExecArray | null;
    while (!(m = /tandem cloud service on (\S+)/.exec(out))) {
      if (child.exitCode !== null || Date.now() - started > 60_000) throw new Error(`the service did not start:\n${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const metrics = await (await fetch(`${m[1]}/metrics`)).text();
    return Number(/^tandem_cloud_partitions_loaded (\d+)$/m.exec(metrics)?.[1] ?? NaN);
  } finally {
    child.kill('SIGKILL');
    models.cleanup();
  }
}

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

  it('cloud serve loads its models before listening, and not with --no-preload', async () => {
    expect(await partitionsAtStart([])).toBe(2);
    expect(await partitionsAtStart(['--no-preload'])).toBe(0);
  }, 120_000);
});
