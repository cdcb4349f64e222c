/**
 * The container's contract without Docker (none on CI): `cloud/entrypoint.sh`, the image's
 * ENTRYPOINT, run as the platforms run it — `serve` as the command, the port from
 * SAGEMAKER_BIND_TO_PORT or AIP_HTTP_PORT, models from TANDEM_MODELS — and stopped with
 * SIGTERM, which must reach the service itself (the script execs it) and drain it.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/cli.js';
import { affineModel } from '../helpers/tiny-onnx.js';
import { freePort } from '../helpers/mqtt-brokers.js';

const SCRIPT = join(ROOT, 'cloud', 'entrypoint.sh');
const CLI = `${process.execPath} --import tsx ${join(ROOT, 'cli', 'entry.ts')}`;

interface Container {
  pid: number;
  output: () => string;
  exited: Promise<number | null>;
  /** Kills whatever is left of its process group (a failed test must not leave a service running). */
  cleanup: () => void;
}

function container(args: string[], env: NodeJS.ProcessEnv): Container {
  // Its own process group, so that cleanup reaches a service the script failed to exec.
  const child = spawn('sh', [SCRIPT, ...args], { cwd: ROOT, env: { ...process.env, TANDEM_CLI: CLI, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const pid = child.pid as number;
  const cleanup = (): void => {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  };
  return { pid, output: () => out, exited, cleanup };
}

describe('the container entrypoint', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tandem-container-'));
    await writeFile(join(dir, 'affine.onnx'), affineModel('x', 'y', [1, 4], 2, 1));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it.each([
    ['SageMaker', 'SAGEMAKER_BIND_TO_PORT', '/ping', {}],
    ['Vertex AI', 'AIP_HTTP_PORT', '/health', {}],
    ['SageMaker, with TANDEM_WORKERS=1,', 'SAGEMAKER_BIND_TO_PORT', '/ping', { TANDEM_WORKERS: '1' }],
  ])('serves as %s runs it, and drains on SIGTERM', async (_platform, portVariable, health, extraEnv: NodeJS.ProcessEnv) => {
    // freePort's port can be taken by another test's server before the service binds it (the
    // service then exits with EADDRINUSE, and the other server would answer the probes): take
    // another port then.
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const c = container(['serve'], { [portVariable]: String(port), TANDEM_MODELS: dir, ...extraEnv });
      try {
        if (!(await listening(c, port))) {
          if (attempt < 3) continue;
          throw new Error(`the service could not listen on three free ports:\n${c.output()}`);
        }
        // The platform passes no flags: the worker threads come from the environment.
        expect(c.output()).toContain(`"workers":${extraEnv['TANDEM_WORKERS'] ?? 0}`);
        await serveAndStop(c, `http://127.0.0.1:${port}`, health);
        return;
      } finally {
        c.cleanup();
      }
    }
  });

  it('hands any other command to tandem', async () => {
    const c = container(['inspect', '--help'], {});
    try {
      expect(await c.exited).toBe(0);
      expect(c.output()).toMatch(/Usage: tandem inspect/);
    } finally {
      c.cleanup();
    }
  });
});

/**
 * Resolves true once the service logs that it listens on `port` (its own line: a probe of the
 * port could reach another test's server), false if it exits first.
 */
async function listening(c: Container, port: number): Promise<boolean> {
  let exited = false;
  void c.exited.then(() => (exited = true));
  const until = Date.now() + 60_000;
  for (;;) {
    const line = c.output().split('\n').find((l) => l.includes('tandem cloud service listening'));
    if (line !== undefined) return line.includes(`:${port}"`);
    if (exited) return false;
    if (Date.now() > until) throw new Error(`the service did not start:\n${c.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Waits until the container answers its health route, infers once, and stops it with SIGTERM. */
async function serveAndStop(c: Container, base: string, health: string): Promise<void> {
  const until = Date.now() + 60_000;
  for (;;) {
    const res = await fetch(`${base}${health}`).catch(() => undefined);
    if (res?.ok) break;
    if (Date.now() > until) throw new Error(`the container did not start:\n${c.output()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  // The script exec'd the service: the process the platform signals is node, not sh.
  expect(await readFile(`/proc/${c.pid}/cmdline`, 'utf8')).toContain('cloud\0serve');
  const res = await fetch(`${base}/v2/models/affine/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: [0, 1, 2, 3] }] }),
  });
  expect(res.status).toBe(200);
  expect(((await res.json()) as { outputs: Array<{ data: number[] }> }).outputs[0]?.data).toEqual([1, 3, 5, 7]);
  process.kill(c.pid, 'SIGTERM');
  expect(await c.exited).toBe(0);
  expect(c.output()).toMatch(/"msg":"drained"/);
}
