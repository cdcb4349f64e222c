import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { verifyAuditFile } from '../../src/residency/audit.js';
import { LocalKeyFile, unseal } from '../../src/residency/envelope.js';
import { resultKey } from '../../src/residency/stores/types.js';
import { OssFake } from '../fakes/oss.js';

const CHILD = join(import.meta.dirname, '..', 'fixtures', 'residency', 'crash-child.ts');
const KILLS = Number(process.env['RESIDENCY_CRASH_KILLS'] ?? 24);

const oss = new OssFake('results-cn', { AKID: 'crash-secret' });
let dir: string;

beforeAll(async () => {
  await oss.start();
  dir = await mkdtemp(join(tmpdir(), 'tandem-crash-'));
});
afterAll(async () => {
  await oss.stop();
  await rm(dir, { recursive: true, force: true });
});

interface RunResult {
  acks: Array<{ id: string; store: string; dataClass: string }>;
  denied: string[];
  lines: string[];
}

/** Runs one child; in accept mode it is SIGKILLed `killAfterMs` after it reports READY. */
function runChild(run: number, mode: 'accept' | 'drain', killAfterMs: number, onReady?: () => void): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, JSON.stringify({ dir, run, mode })], { stdio: ['ignore', 'pipe', 'pipe'] });
    const result: RunResult = { acks: [], denied: [], lines: [] };
    let buf = '';
    let stderr = '';
    let timer: NodeJS.Timeout | undefined;
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.stdout.on('data', (c: Buffer) => {
      buf += c.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        result.lines.push(line);
        const [tag, id, store, dataClass] = line.split(' ');
        if (tag === 'ACK') result.acks.push({ id: id!, store: store!, dataClass: dataClass! });
        else if (tag === 'DENIED') result.denied.push(id!);
        else if (tag === 'READY' && mode === 'accept') {
          onReady?.();
          timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
        }
      }
    });
    const guard = setTimeout(() => child.kill('SIGKILL'), 90_000);
    child.on('exit', (code, signal) => {
      clearTimeout(guard);
      if (timer) clearTimeout(timer);
      if (mode === 'accept' && signal !== 'SIGKILL') reject(new Error(`child ${run} exited ${code ?? signal}: ${stderr}`));
      else if (mode === 'drain' && code !== 0) reject(new Error(`drain child exited ${code ?? signal}: ${stderr}`));
      else resolve(result);
    });
  });
}

it(`every acknowledged result is stored exactly once, nowhere forbidden, across ${KILLS} SIGKILLs with the store flapping`, async () => {
  await writeFile(
    join(dir, 'policy.yaml'),
    `version: 1
classes:
  cn-personal:
    store:
      - { provider: alibaba, regions: [cn-shanghai], requireSse: true }
  telemetry:
    store:
      - { provider: "*", regions: ["*"] }
stores:
  oss-shanghai: { type: oss, region: cn-shanghai, bucket: results-cn, endpoint: "${oss.url}", pathStyle: true }
  local-eu: { type: local, region: eu-central-1, root: "${join(dir, 'eu')}" }
`,
  );
  const acked = new Map<string, { store: string; dataClass: string }>();
  const denied: string[] = [];
  let flaps = 0;
  for (let run = 0; run < KILLS; run++) {
    // The store is down for about half the runs, and may flip while the child runs.
    oss.down = Math.random() < 0.5;
    if (oss.down) oss.dropConnections();
    const killAfter = 50 + Math.floor(Math.random() * 500);
    const flip = setTimeout(() => {
      oss.down = !oss.down;
      if (oss.down) oss.dropConnections();
      flaps++;
    }, Math.floor(Math.random() * killAfter));
    const r = await runChild(run, 'accept', killAfter);
    clearTimeout(flip);
    for (const a of r.acks) acked.set(a.id, a);
    denied.push(...r.denied);
  }
  oss.down = false;
  const drain = await runChild(KILLS, 'drain', 0);
  expect(drain.lines).toContain('DRAINED');

  expect(acked.size).toBeGreaterThan(KILLS * 5);
  expect(denied.length).toBeGreaterThan(0);
  expect(flaps).toBeGreaterThan(0);

  const keys = await LocalKeyFile.open(join(dir, 'kek'));
  // Every acknowledged result is in its store, under its key, with its content.
  const euFiles = ((await readdir(join(dir, 'eu'), { recursive: true })) as string[]).filter((f) => f.endsWith('.tde'));
  const euKeys = new Set(euFiles);
  for (const [id, a] of acked) {
    const key = resultKey(id);
    let sealed: Uint8Array;
    if (a.store === 'oss-shanghai') {
      expect(a.dataClass).toBe('cn-personal');
      const obj = oss.objects.get(key);
      expect(obj, `acknowledged ${id} missing from OSS`).toBeDefined();
      expect(obj!.sse).toBe('AES256');
      sealed = obj!.body;
    } else {
      expect(a.store).toBe('local-eu');
      expect(euKeys.has(key), `acknowledged ${id} missing from local-eu`).toBe(true);
      const raw = await readFile(join(dir, 'eu', key));
      sealed = raw.subarray(raw.indexOf(0x0a) + 1);
    }
    const { plaintext, meta } = await unseal(keys, key, sealed);
    expect(Buffer.from(plaintext).toString()).toBe(`result for ${id}`);
    expect(meta['request-id']).toBe(id);
  }

  // Exactly one copy: one object per request id across both stores, and nothing forbidden.
  const seen = new Map<string, number>();
  for (const [key, obj] of oss.objects) {
    const { meta } = await unseal(keys, key, obj.body);
    expect(meta['data-class']).toBe('cn-personal');
    seen.set(meta['request-id']!, (seen.get(meta['request-id']!) ?? 0) + 1);
  }
  for (const f of euFiles) {
    const raw = await readFile(join(dir, 'eu', f));
    const { meta } = await unseal(keys, f, raw.subarray(raw.indexOf(0x0a) + 1));
    // cn-personal data must never reach the EU store, whatever the child asked for.
    expect(meta['data-class']).toBe('telemetry');
    seen.set(meta['request-id']!, (seen.get(meta['request-id']!) ?? 0) + 1);
  }
  for (const [id, n] of seen) expect(n, `request ${id} stored ${n} times`).toBe(1);
  for (const id of denied) expect(seen.has(id)).toBe(false);

  // The audit log survived every kill (torn tails are cut and recorded on reopen) and verifies.
  const audit = await verifyAuditFile(join(dir, 'audit.jsonl'));
  expect(audit.records).toBeGreaterThanOrEqual(acked.size + denied.length);
  const rewrites = [...oss.objects.values()].filter((o) => o.writes > 1).length;
  console.info(`crash test: ${KILLS} kills, ${flaps} store flips, ${acked.size} acknowledged, ${denied.length} refused, ${oss.objects.size + euFiles.length} objects, ${rewrites} rewritten by retries, ${audit.records} audit records`);
}, 300_000);
