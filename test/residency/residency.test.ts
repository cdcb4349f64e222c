import { mkdtemp, readFile, rm, writeFile, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { realIo, type AppendIo } from '../../src/residency/append-file.js';
import { AuditLog, verifyAuditFile } from '../../src/residency/audit.js';
import { AuditTamperError, PolicyError, ResidencyDeniedError, UnknownDataClassError } from '../../src/residency/errors.js';
import { ResidencyGate, allowedStores, evaluateSend, filterEndpoints } from '../../src/residency/gate.js';
import { loadPolicy, parsePolicy } from '../../src/residency/policy.js';
import { runCliInProcess } from '../helpers/cli.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tandem-residency-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function policyError(text: string): PolicyError {
  try {
    parsePolicy(text, 'p.yaml');
  } catch (error) {
    if (error instanceof PolicyError) return error;
    throw error;
  }
  throw new Error('expected a PolicyError');
}

describe('policy parsing', () => {
  it('points at the line and JSON path of a schema error in YAML', () => {
    const e = policyError(['version: 1', 'classes:', '  pii:', '    process:', '      - provider: aws', '        regions: [EU-West]', ''].join('\n'));
    expect(e.code).toBe('RESIDENCY_POLICY_INVALID');
    expect(e.issues[0]).toMatchObject({ path: '$.classes.pii.process[0].regions[0]', line: 6 });
    expect(e.message).toContain('p.yaml:6:');
  });

  it('points at the line of a JSON policy error too', () => {
    const text = JSON.stringify({ version: 1, classes: { a: { process: [], store: [] } }, stores: { s: { type: 'ftp', region: 'x' } } }, null, 2);
    const e = policyError(text);
    expect(e.issues[0]?.path).toBe('$.stores.s.type');
    expect(e.issues[0]?.line).toBe(text.split('\n').findIndex((l) => l.includes('"ftp"')) + 1);
  });

  it('reports YAML syntax errors and duplicate keys with their line', () => {
    expect(policyError('version: 1\nclasses: {\n').issues[0]?.line).toBeGreaterThan(0);
    const dup = policyError('version: 1\nclasses: {}\nclasses: {}\n');
    expect(dup.issues[0]?.line).toBe(3);
  });

  it('rejects unknown keys, a wrong version and origins naming undeclared classes', () => {
    expect(policyError('version: 2\nclasses: {}\n').issues[0]?.path).toBe('$.version');
    expect(policyError('version: 1\nclasses: {}\nendpionts: {}\n').issues[0]?.message).toMatch(/endpionts/);
    const e = policyError('version: 1\nclasses:\n  a: {}\norigins:\n  cam:\n    classes: [a, b]\n');
    expect(e.issues[0]).toMatchObject({ path: '$.origins.cam.classes[1]', line: 6 });
  });

  it('names an unreadable file', async () => {
    await expect(loadPolicy(join(dir, 'missing.yaml'))).rejects.toBeInstanceOf(PolicyError);
  });
});

describe('example policies', () => {
  it('PIPL: Chinese personal data is processed and stored only in cn-* regions', async () => {
    const p = await loadPolicy('edge/policies/pipl-shanghai.yaml');
    expect(filterEndpoints(p, 'cn-personal', 'shanghai-camera').allowed).toEqual(['eas-shanghai', 'eas-beijing']);
    expect(allowedStores(p, 'cn-personal')).toEqual(['oss-shanghai', 'local-cn']);
    expect(allowedStores(p, 'telemetry')).toEqual(['oss-shanghai', 'local-cn', 's3-frankfurt']);
  });

  it('GDPR: health data stays in Frankfurt regions', async () => {
    const p = await loadPolicy('edge/policies/gdpr-frankfurt.yaml');
    expect(filterEndpoints(p, 'eu-health').allowed).toEqual(['sagemaker-frankfurt', 'vertex-frankfurt']);
    expect(allowedStores(p, 'eu-health')).toEqual(['s3-frankfurt', 'gcs-frankfurt', 'local-eu']);
    expect(allowedStores(p, 'anonymous')).toContain('s3-virginia');
  });

  it('HIPAA: PHI only on covered services in us-east-2, stored with SSE', async () => {
    const p = await loadPolicy('edge/policies/hipaa-ohio.yaml');
    expect(filterEndpoints(p, 'phi').allowed).toEqual(['sagemaker-ohio']);
    expect(allowedStores(p, 'phi')).toEqual(['s3-ohio']);
    expect(filterEndpoints(p, 'deidentified').allowed).toEqual(['sagemaker-ohio', 'oip-ohio', 'vertex-iowa']);
  });

  it('refuses a runtime endpoint whose region disagrees with the policy, and undeclared endpoints', async () => {
    const p = await loadPolicy('edge/policies/pipl-shanghai.yaml');
    expect(evaluateSend(p, 'cn-personal', undefined, { name: 'eas-shanghai', region: 'ap-southeast-1' }).allowed).toBe(false);
    expect(evaluateSend(p, 'telemetry', undefined, 'somewhere-else').allowed).toBe(false);
  });
});

async function writeLog(n: number): Promise<string> {
  const file = join(dir, `log-${n}.jsonl`);
  const log = await AuditLog.open(file);
  for (let i = 0; i < n; i++) await log.append({ requestId: `r${i}`, kind: 'write', dataClass: 'c', origin: null, allowed: ['s'], chosen: 's', why: 'ok' });
  await log.close();
  return file;
}

async function tamperLine(file: string, edit: (lines: string[]) => string[]): Promise<void> {
  const lines = (await readFile(file, 'utf8')).trim().split('\n');
  await writeFile(file, `${edit(lines).join('\n')}\n`);
}

describe('gate and audit log', () => {
  it('filters endpoints, answers locally when none is allowed, refuses forbidden writes, and audits every decision', async () => {
    const p = parsePolicy(['version: 1', 'classes:', '  secret: {}', '  open:', '    process: [{ provider: aws, regions: ["*"] }]', '    store: [{ provider: local, regions: [eu-central-1] }]', 'endpoints:', '  sm: { provider: aws, region: us-east-2 }', 'stores:', '  eu: { type: local, region: eu-central-1, root: /tmp/eu }', '  us: { type: local, region: us-east-2, root: /tmp/us }', ''].join('\n'));
    const file = join(dir, 'audit.jsonl');
    const audit = await AuditLog.open(file);
    const gate = new ResidencyGate(p, audit);
    expect(await gate.allowedEndpoints('open', { requestId: 'r1' })).toEqual(['sm']);
    expect(await gate.allowedEndpoints('secret', { requestId: 'r2' })).toEqual([]);
    await gate.recordChoice('r1', 'open', 'sm', 'lowest predicted latency');
    await expect(gate.checkWrite('open', 'eu', { requestId: 'r1' })).resolves.toBeUndefined();
    const denied = await gate.checkWrite('open', 'us', { requestId: 'r1' }).catch((e: unknown) => e);
    expect(denied).toBeInstanceOf(ResidencyDeniedError);
    expect((denied as ResidencyDeniedError).code).toBe('RESIDENCY_WRITE_DENIED');
    await expect(gate.allowedEndpoints('nope', { requestId: 'r3' })).rejects.toBeInstanceOf(UnknownDataClassError);
    await expect(gate.checkWrite('open', 'eu', { origin: 'ghost' })).rejects.toMatchObject({ code: 'RESIDENCY_UNKNOWN_ORIGIN' });
    await audit.close();

    const lines = (await readFile(file, 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => [l.requestId, l.kind, l.chosen])).toEqual([
      ['r1', 'send', null],
      ['r2', 'send', 'local'],
      ['r1', 'choice', 'sm'],
      ['r1', 'write', 'eu'],
      ['r1', 'write', null],
      ['r3', 'send', 'local'],
      [null, 'write', null],
    ]);
    expect(lines[1].why).toMatch(/answer locally/);
    expect(await verifyAuditFile(file)).toMatchObject({ records: 7 });

    // Reopening continues the same chain.
    const again = await AuditLog.open(file);
    await again.append({ requestId: 'r4', kind: 'send', dataClass: 'open', origin: null, allowed: [], chosen: null, why: 'x' });
    await again.close();
    expect(await verifyAuditFile(file)).toMatchObject({ records: 8 });
  });

  it.each([
    ['an edited field', (l: string[]) => l.map((x, i) => (i === 3 ? x.replace('"chosen":"s"', '"chosen":"t"') : x)), 4],
    ['a deleted line', (l: string[]) => l.filter((_, i) => i !== 2), 3],
    ['swapped lines', (l: string[]) => [l[0]!, l[1]!, l[3]!, l[2]!, l[4]!], 3],
    ['an inserted copy', (l: string[]) => [l[0]!, l[1]!, l[1]!, l[2]!, l[3]!, l[4]!], 3],
    ['a rehashed edit that breaks the link to the next line', (l: string[]) => l.map((x, i) => (i === 1 ? x.replace(/"hash":"[0-9a-f]+"/, `"hash":"${'f'.repeat(64)}"`) : x)), 2],
  ])('verify names the first bad line after %s', async (_name, edit, badLine) => {
    const file = await writeLog(5);
    await tamperLine(file, edit);
    const error = await verifyAuditFile(file).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuditTamperError);
    expect((error as AuditTamperError).details['line']).toBe(badLine);
  });

  it('refuses to extend a tampered log, and cuts (and records) a torn last line', async () => {
    const file = await writeLog(3);
    await appendFile(file, '{"seq":4,"ts":"');
    const log = await AuditLog.open(file);
    await log.close();
    const last = JSON.parse((await readFile(file, 'utf8')).trim().split('\n').at(-1)!);
    expect(last.kind).toBe('recovery');
    expect(await verifyAuditFile(file)).toMatchObject({ records: 4 });
    await tamperLine(file, (l) => l.map((x, i) => (i === 0 ? x.replace('"r0"', '"rX"') : x)));
    await expect(AuditLog.open(file)).rejects.toBeInstanceOf(AuditTamperError);
  });

  it('is fail-stop: after a failed write no later record can extend a broken chain; reopening continues cleanly', async () => {
    const file = join(dir, 'failstop.jsonl');
    let fail = false;
    const io: AppendIo = {
      async write(handle, data, position) {
        if (fail) throw Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' });
        await realIo.write(handle, data, position);
      },
      sync: realIo.sync,
    };
    const log = await AuditLog.open(file, { io });
    const event = { requestId: 'r', kind: 'send' as const, dataClass: 'c', origin: null, allowed: [], chosen: null, why: '' };
    await log.append(event);
    fail = true;
    await expect(log.append(event)).rejects.toMatchObject({ code: 'EIO' });
    fail = false;
    await expect(log.append(event)).rejects.toMatchObject({ code: 'EIO' });
    await log.close();
    expect(await verifyAuditFile(file)).toMatchObject({ records: 1 });
    const again = await AuditLog.open(file);
    await again.append(event);
    await again.close();
    expect(await verifyAuditFile(file)).toMatchObject({ records: 2 });
  });

  it('serialises concurrent appends into one valid chain', async () => {
    const file = join(dir, 'c.jsonl');
    const log = await AuditLog.open(file);
    await Promise.all(Array.from({ length: 200 }, (_, i) => log.append({ requestId: `r${i}`, kind: 'send', dataClass: 'c', origin: null, allowed: [], chosen: null, why: '' })));
    await log.close();
    expect(await verifyAuditFile(file)).toMatchObject({ records: 200 });
  });
});

describe('CLI', () => {
  const run = runCliInProcess;

  it('policy check prints a JSON summary, or the line of the error', async () => {
    const ok = await run(['policy', 'check', 'edge/policies/hipaa-ohio.yaml']);
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.out.trim().split('\n').at(-1)!)).toMatchObject({ ok: true, classes: ['phi', 'deidentified'] });
    const bad = join(dir, 'bad.yaml');
    await writeFile(bad, 'version: 1\nclasses:\n  a:\n    store: [{ provider: aws }]\n');
    const r = await run(['policy', 'check', bad]);
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/RESIDENCY_POLICY_INVALID/);
    expect(r.err).toContain(`${bad}:4:`);
    expect(r.err).toContain('$.classes.a.store[0].regions');
  });

  it('audit verify exits 0 on an intact log and non-zero naming the line on a tampered one', async () => {
    const file = await writeLog(4);
    const ok = await run(['audit', 'verify', file]);
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.out.trim().split('\n').at(-1)!)).toMatchObject({ ok: true, records: 4 });
    await tamperLine(file, (l) => l.map((x, i) => (i === 2 ? x.replace('"why":"ok"', '"why":"fine"') : x)));
    const bad = await run(['audit', 'verify', file]);
    expect(bad.code).not.toBe(0);
    expect(bad.err).toContain('AUDIT_TAMPERED');
    expect(bad.err).toContain(`${file}:3:`);
  });
});
