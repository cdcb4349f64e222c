/**
 * `tandem edge run --config edge.yaml` as a process: it serves, stores results under the
 * residency policy, and on SIGTERM drains and flushes the outbox before exiting 0.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ocrModelPath } from '../../models/ocr-models.js';
import { encodeRequest } from '../../edge/protocol.js';

const MAIN = fileURLToPath(new URL('../../cli/main.ts', import.meta.url));
let entry = '';

/** Runs the CLI from source in a child process (tsx), as `tandem ARGS`. */
function runCli(args: string[]): { child: ReturnType<typeof spawn>; output: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, ['--import', 'tsx', entry, ...args], { cwd: process.cwd(), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => out, exited };
}

describe('tandem edge run', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tandem-edge-run-'));
    entry = join(dir, 'tandem.mts');
    await writeFile(entry, `import { main } from ${JSON.stringify(MAIN)};\nprocess.exitCode = await main(process.argv);\n`);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses an invalid config with the key path and line', async () => {
    await writeFile(join(dir, 'bad.yaml'), 'models:\n  - name: cls\n    path: cls.onnx\nhttp:\n  port: -1\n');
    const cli = runCli(['edge', 'run', '--config', join(dir, 'bad.yaml')]);
    expect(await cli.exited).toBe(2);
    expect(cli.output()).toMatch(/tandem: error EDGE_CONFIG_INVALID: .*\n\s+http\.port \(line 5\)/);
  });

  it('serves HTTP, stores results where the policy allows, and drains on SIGTERM', async () => {
    await writeFile(
      join(dir, 'policy.yaml'),
      `version: 1\nclasses:\n  eu-personal:\n    store: [{ provider: local, regions: ["eu-*"] }]\nstores:\n  local-eu: { type: local, region: eu-central-1, root: ${JSON.stringify(join(dir, 'results'))} }\n  local-us: { type: local, region: us-east-1, root: ${JSON.stringify(join(dir, 'results-us'))} }\n`,
    );
    await writeFile(
      join(dir, 'edge.yaml'),
      [
        'models:',
        `  - { name: cls, path: ${JSON.stringify(ocrModelPath('ch_ppocr_mobile_v2.0_cls_infer.onnx'))} }`,
        'residency: { policy: policy.yaml, defaultDataClass: eu-personal, audit: audit.log }',
        'outbox: { dir: outbox }',
        // Port 0 and the port the agent logs: a port picked free beforehand can be taken by
        // another test's server before the agent binds it.
        'http: { port: 0 }',
        'log: { level: info }',
      ].join('\n'),
    );
    const cli = runCli(['edge', 'run', '--config', join(dir, 'edge.yaml')]);
    const until = Date.now() + 60_000;
    let base = '';
    for (;;) {
      const listening = cli.output().split('\n').filter((l) => l.includes('"HTTP front listening"')).map((l) => JSON.parse(l) as { port?: number })[0];
      if (listening?.port) {
        base = `http://127.0.0.1:${listening.port}`;
        if (await fetch(`${base}/healthz`).then((r) => r.ok, () => false)) break;
      }
      if (Date.now() > until) throw new Error(`agent did not start:\n${cli.output()}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const x = { dtype: 'float32' as const, dims: [1, 3, 48, 192], data: new Float32Array(3 * 48 * 192).fill(0.5) };
    const replies = await Promise.all(
      ['a', 'b', 'c'].map(async (id) => {
        const res = await fetch(`${base}/v1/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: encodeRequest({ requestId: `run-${id}`, model: 'cls', tensors: { x } }, 'json') });
        return { status: res.status, body: (await res.json()) as Record<string, any> };
      }),
    );
    for (const r of replies) {
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({ ok: true, plan: { kind: 'local' }, stored: { store: 'local-eu', region: 'eu-central-1' } });
      expect(r.body['outputs']).toBeDefined();
    }
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/tandem_request_duration_seconds_count\{plan_kind="local",plan="local"\} 3/);
    cli.child.kill('SIGTERM');
    expect(await cli.exited).toBe(0);
    expect(cli.output()).toMatch(/"msg":"edge agent stopped"/);
    // The outbox flushed every result to the EU store; nothing went to the US one.
    const files = await readdir(join(dir, 'results'), { recursive: true });
    expect(files.filter((f) => String(f).endsWith('.tde'))).toHaveLength(3);
    await expect(readdir(join(dir, 'results-us'))).rejects.toThrow();
  });
});
