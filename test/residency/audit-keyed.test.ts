// The keyed audit log: records MACed under a key that only a KMS (or the device's key file) can
// unwrap. Each kind of tampering is made on a copy and must be named with its line and kind.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditLog, auditReport, verifyAuditFile } from '../../src/residency/audit.js';
import { keyedLine } from '../../src/residency/audit-keyed.js';
import { LocalKeyFile } from '../../src/residency/envelope.js';
import { AwsKmsSource } from '../../src/residency/kms/aws.js';
import { AwsKmsFake } from '../fakes/kms-aws.js';

const keys = LocalKeyFile.fromBytes(Buffer.alloc(32, 7));
let dir: string;
let file: string;
let lines: string[];

const event = (i: number) => ({ requestId: `r${i}`, kind: 'write' as const, dataClass: 'health', origin: null, allowed: ['eu-store'], chosen: 'eu-store', why: `allowed ${i}` });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tandem-audit-keyed-'));
  file = join(dir, 'audit.jsonl');
  const log = await AuditLog.open(file, { keys, fsync: false });
  for (let i = 1; i <= 5; i++) await log.append(event(i));
  await log.close();
  lines = (await readFile(file, 'utf8')).split('\n').filter((l) => l !== '');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function reportOf(name: string, content: string[], checkpoint?: { log: string; seq: number; mac: string }) {
  const path = join(dir, name);
  await writeFile(path, content.map((l) => `${l}\n`).join(''));
  return auditReport(path, { keys, ...(checkpoint ? { checkpoint } : {}) });
}

describe('keyed audit log', () => {
  it('writes a header, an open record, the decisions and a closing record, and verifies intact', async () => {
    // header, open, 5 writes, close
    expect(lines).toHaveLength(8);
    expect(JSON.parse(lines[0]!)).toMatchObject({ v: 2, type: 'header', alg: 'HMAC-SHA256', key: { keyId: keys.keyId } });
    expect(JSON.parse(lines[1]!)).toMatchObject({ seq: 1, kind: 'open' });
    expect(JSON.parse(lines[7]!)).toMatchObject({ seq: 7, kind: 'close' });
    const report = await auditReport(file, { keys });
    expect(report).toMatchObject({ format: 'keyed', intact: true, closed: true, records: 7, lastSeq: 7, findings: [], warnings: [] });
    expect(await verifyAuditFile(file, keys)).toMatchObject({ records: 7 });
  });

  it('names an edited field (the line and the record)', async () => {
    const edited = [...lines];
    edited[3] = edited[3]!.replace('"chosen":"eu-store"', '"chosen":"cn-store"');
    const report = await reportOf('edited.jsonl', edited);
    expect(report.intact).toBe(false);
    expect(report.findings).toEqual([{ line: 4, seq: 3, kind: 'edited', message: expect.stringContaining('edited') }]);
  });

  it('names a forged record, even one chained with the unkeyed hash or a MAC under another key', async () => {
    const prior = JSON.parse(lines[3]!) as { mac: string; seq: number };
    const forgedFields = { seq: prior.seq + 1, ts: new Date().toISOString(), ...event(99), prev: prior.mac };
    const forged = [...lines];
    forged.splice(4, 0, keyedLine(Buffer.alloc(32, 1), forgedFields).line);
    const report = await reportOf('forged.jsonl', forged);
    expect(report.findings[0]).toMatchObject({ line: 5, seq: 4, kind: 'forged' });
    // The genuine records around it still verify: only the forgery is named.
    expect(report.findings).toHaveLength(1);
  });

  it('names deleted, reordered and replayed records', async () => {
    const deleted = lines.filter((_, i) => i !== 4);
    expect((await reportOf('deleted.jsonl', deleted)).findings).toEqual([expect.objectContaining({ line: 5, seq: 5, kind: 'deleted', message: expect.stringContaining('record 4') })]);
    const reordered = [...lines];
    [reordered[3], reordered[4]] = [reordered[4]!, reordered[3]!];
    const r = await reportOf('reordered.jsonl', reordered);
    expect(r.findings.map((f) => f.kind)).toEqual(['reordered', 'reordered']);
    expect(r.findings[0]).toMatchObject({ line: 4, seq: 4 });
    const replayed = [...lines];
    replayed.splice(5, 0, lines[2]!);
    expect((await reportOf('replayed.jsonl', replayed)).findings).toEqual([expect.objectContaining({ line: 6, seq: 2, kind: 'replayed' })]);
  });

  it('reports a log without its closing record as not closed, and as truncated against a checkpoint', async () => {
    const cut = lines.slice(0, 5);
    const open = await reportOf('cut.jsonl', cut);
    expect(open).toMatchObject({ intact: true, closed: false, lastSeq: 4 });
    expect(open.warnings[0]).toMatch(/does not end with a closing record/);
    const header = JSON.parse(lines[0]!) as { log: string };
    const last = JSON.parse(lines[6]!) as { seq: number; mac: string };
    const checked = await reportOf('cut-cp.jsonl', cut, { log: header.log, seq: last.seq, mac: last.mac });
    expect(checked.findings).toEqual([expect.objectContaining({ kind: 'truncated', seq: 6, message: expect.stringContaining('tail was cut') })]);
    expect((await reportOf('full-cp.jsonl', lines, { log: header.log, seq: last.seq, mac: last.mac })).intact).toBe(true);
  });

  it('refuses an edited header and a header swapped for one under the attacker\'s own key', async () => {
    const edited = [...lines];
    edited[0] = edited[0]!.replace(/"created":"[^"]+"/, '"created":"2020-01-01T00:00:00.000Z"');
    expect((await reportOf('header.jsonl', edited)).findings[0]).toMatchObject({ line: 1, kind: 'header' });
    // Rewritten wholesale under another key file: the verifier's key does not unwrap it.
    const other = LocalKeyFile.fromBytes(Buffer.alloc(32, 8));
    const rewritten = join(dir, 'rewritten.jsonl');
    const log = await AuditLog.open(rewritten, { keys: other, fsync: false });
    await log.append(event(1));
    await log.close();
    await expect(auditReport(rewritten, { keys })).rejects.toMatchObject({ code: 'AUDIT_KEY' });
  });

  it('refuses to extend a tampered log, and continues an intact one after its closing record', async () => {
    const edited = [...lines];
    edited[3] = edited[3]!.replace('allowed 2', 'allowed 9');
    const path = join(dir, 'reopen-bad.jsonl');
    await writeFile(path, edited.map((l) => `${l}\n`).join(''));
    await expect(AuditLog.open(path, { keys, fsync: false })).rejects.toMatchObject({ code: 'AUDIT_TAMPERED', details: { line: 4 } });
    const good = join(dir, 'reopen-good.jsonl');
    await writeFile(good, lines.map((l) => `${l}\n`).join(''));
    const log = await AuditLog.open(good, { keys, fsync: false });
    await log.append(event(6));
    expect(log.checkpoint()).toMatchObject({ seq: 9 });
    await log.close();
    expect(await auditReport(good, { keys })).toMatchObject({ intact: true, closed: true, lastSeq: 10 });
    // Opening without the key, or a keyed log's key on an unkeyed log, is refused.
    await expect(AuditLog.open(good)).rejects.toMatchObject({ code: 'AUDIT_KEY' });
    await expect(auditReport(good)).rejects.toMatchObject({ code: 'AUDIT_KEY' });
  });

  it('still reads the unkeyed format, saying it cannot show forgery', async () => {
    const legacy = join(dir, 'legacy.jsonl');
    const log = await AuditLog.open(legacy, { fsync: false });
    await log.append(event(1));
    await log.close();
    expect(await auditReport(legacy)).toMatchObject({ format: 'unkeyed', intact: true, records: 1, warnings: [expect.stringMatching(/anyone who can write the file can recompute/)] });
    // Checked with a key, an unkeyed chain is what stripping a keyed log's MACs leaves: a finding.
    expect(await auditReport(legacy, { keys })).toMatchObject({ format: 'unkeyed', intact: false, findings: [{ line: 1, kind: 'unkeyed' }] });
    await expect(verifyAuditFile(legacy, keys)).rejects.toMatchObject({ code: 'AUDIT_TAMPERED' });
  });
});

describe('audit log keyed by AWS KMS', () => {
  const credentials = { accessKeyId: 'AKIAAUDIT', secretAccessKey: 'audit-secret' };
  const fake = new AwsKmsFake({ region: 'eu-central-1', credentials, keys: ['audit-key'], aliases: { audit: 'audit-key' } });
  beforeAll(async () => {
    await fake.start();
  });
  afterAll(async () => {
    await fake.stop();
  });

  it('cannot be verified (or recomputed) without Decrypt on the KMS key', async () => {
    const source = new AwsKmsSource({ kind: 'aws-kms', keyId: 'alias/audit', region: 'eu-central-1', endpoint: fake.url }, { client: { credentials } });
    const path = join(dir, 'kms-audit.jsonl');
    const log = await AuditLog.open(path, { keys: source, fsync: false });
    await log.append(event(1));
    await log.close();
    expect(await auditReport(path, { keys: source })).toMatchObject({ format: 'keyed', intact: true, closed: true });
    fake.deny.add('Decrypt');
    await expect(auditReport(path, { keys: source })).rejects.toMatchObject({ code: 'AUDIT_KEY', cause: expect.objectContaining({ code: 'KMS_ACCESS_DENIED' }) });
    await source.close();
  });
});
