// `tandem audit verify`: an intact keyed log passes; a forged, edited or cut one exits 1 naming
// the line and the kind; a keyed log without its key is refused; the unkeyed format still reads.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditLog, type AuditEvent } from '../../src/residency/audit.js';
import { keyedLine } from '../../src/residency/audit-keyed.js';
import { LocalKeyFile } from '../../src/residency/envelope.js';
import { AwsKmsSource } from '../../src/residency/kms/aws.js';
import { AwsKmsFake } from '../fakes/kms-aws.js';
import { lastJsonLine, runCli, runCliInProcess } from '../helpers/cli.js';

let dir: string;
let keyFile: string;
let log: string;
let lines: string[];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tandem-audit-cli-'));
  keyFile = join(dir, 'device.key');
  const keys = await LocalKeyFile.open(keyFile, { create: true });
  log = join(dir, 'audit.jsonl');
  const audit = await AuditLog.open(log, { keys, fsync: false });
  for (let i = 1; i <= 3; i++) await audit.append({ requestId: `r${i}`, kind: 'write', dataClass: 'health', origin: null, allowed: ['eu'], chosen: 'eu', why: 'allowed' });
  await audit.close();
  lines = (await readFile(log, 'utf8')).split('\n').filter((l) => l !== '');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function copy(name: string, content: string[]): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, content.map((l) => `${l}\n`).join(''));
  return path;
}

describe('tandem audit verify', () => {
  it('passes an intact keyed log and prints a checkpoint to keep elsewhere', async () => {
    const r = await runCliInProcess(['audit', 'verify', log, '--key-file', keyFile, '--json']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/5 records, keyed chain intact, closed/);
    const json = lastJsonLine<{ ok: boolean; format: string; checkpoint: { seq: number } }>(r.out);
    expect(json).toMatchObject({ ok: true, format: 'keyed', closed: true, checkpoint: { seq: 5 } });
  });

  it('exits 1 on a forged field, naming the line, record and kind', async () => {
    const edited = [...lines];
    edited[2] = edited[2]!.replace('"chosen":"eu"', '"chosen":"us"');
    const path = await copy('edited.jsonl', edited);
    const r = await runCliInProcess(['audit', 'verify', path, '--key-file', keyFile, '--json']);
    expect(r.code).toBe(1);
    expect(r.out).toContain(`${path}:3: edited (record 2)`);
    expect(lastJsonLine<{ ok: boolean; findings: { line: number; kind: string }[] }>(r.out)).toMatchObject({ ok: false, findings: [{ line: 3, kind: 'edited' }] });
    expect(r.err).toMatch(/AUDIT_TAMPERED/);
  });

  it('exits 1 on a line forged without the key (MACed under a guessed one), naming it and nothing else', async () => {
    const before = JSON.parse(lines[2]!) as { seq: number; mac: string };
    const fields = { seq: before.seq + 1, ts: new Date().toISOString(), requestId: 'r-forged', kind: 'write', dataClass: 'health', origin: null, allowed: ['us'], chosen: 'us', why: 'allowed', prev: before.mac };
    const forged = [...lines];
    forged.splice(3, 0, keyedLine(Buffer.alloc(32, 9), fields).line);
    const path = await copy('forged.jsonl', forged);
    const r = await runCliInProcess(['audit', 'verify', path, '--key-file', keyFile, '--json']);
    expect(r.code).toBe(1);
    expect(r.out).toContain(`${path}:4: forged (record ${before.seq + 1})`);
    expect(lastJsonLine<{ findings: { line: number; kind: string }[] }>(r.out).findings).toEqual([expect.objectContaining({ line: 4, kind: 'forged' })]);
    expect(r.err).toMatch(/AUDIT_TAMPERED/);
  });

  it('exits 1 on a deleted line, naming the missing record', async () => {
    const deleted = lines.filter((_, i) => i !== 3);
    const path = await copy('deleted.jsonl', deleted);
    const r = await runCliInProcess(['audit', 'verify', path, '--key-file', keyFile]);
    expect(r.code).toBe(1);
    expect(r.out).toContain(`${path}:4: deleted (record 4): record 3 before this line was deleted`);
  });

  it('exits 1 on a keyed log rewritten as an unkeyed chain (MACs stripped, hashes recomputed)', async () => {
    // A writer without the key rewrites the log with the unkeyed format's own code: every hash
    // recomputed, one decision changed. On its own it verifies; checked with the key it does not.
    const path = join(dir, 'recomputed.jsonl');
    const rewritten = await AuditLog.open(path, { fsync: false });
    for (const l of lines.slice(1)) {
      const { requestId, kind, dataClass, origin, allowed, chosen, why } = JSON.parse(l) as AuditEvent;
      await rewritten.append({ requestId, kind, dataClass, origin, allowed, chosen: chosen === 'eu' ? 'us' : chosen, why });
    }
    await rewritten.close();
    const alone = await runCliInProcess(['audit', 'verify', path]);
    expect(alone.code).toBe(0);
    expect(alone.out).toMatch(/warning: unkeyed log/);
    const r = await runCliInProcess(['audit', 'verify', path, '--key-file', keyFile, '--json']);
    expect(r.code).toBe(1);
    expect(r.out).toContain(`${path}:1: unkeyed: a key source was given but the log is unkeyed`);
    expect(lastJsonLine(r.out)).toMatchObject({ ok: false, format: 'unkeyed', findings: [{ line: 1, kind: 'unkeyed' }] });
  });

  it('exits 1 on a cut tail measured against a checkpoint', async () => {
    const good = await runCliInProcess(['audit', 'verify', log, '--key-file', keyFile, '--json']);
    const checkpoint = join(dir, 'checkpoint.json');
    await writeFile(checkpoint, JSON.stringify(lastJsonLine<{ checkpoint: object }>(good.out).checkpoint));
    const cut = await copy('cut.jsonl', lines.slice(0, 4));
    const unchecked = await runCliInProcess(['audit', 'verify', cut, '--key-file', keyFile]);
    expect(unchecked.code).toBe(0);
    expect(unchecked.out).toMatch(/warning: the log does not end with a closing record/);
    const r = await runCliInProcess(['audit', 'verify', cut, '--key-file', keyFile, '--checkpoint', checkpoint]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/truncated \(record 5\): the log ends at record 3/);
  });

  it('exits 2 on an unreadable log, or a checkpoint that cannot be read or is not one', async () => {
    const missing = await runCliInProcess(['audit', 'verify', join(dir, 'nope.jsonl')]);
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/AUDIT_UNREADABLE/);
    const noCheckpoint = await runCliInProcess(['audit', 'verify', log, '--key-file', keyFile, '--checkpoint', join(dir, 'nope.json')]);
    expect(noCheckpoint.code).toBe(2);
    expect(noCheckpoint.err).toMatch(/CLI_FILE_UNREADABLE/);
    const bad = join(dir, 'bad-checkpoint.json');
    await writeFile(bad, JSON.stringify({ log: 'x', seq: 0 }));
    const malformed = await runCliInProcess(['audit', 'verify', log, '--key-file', keyFile, '--checkpoint', bad]);
    expect(malformed.code).toBe(2);
    expect(malformed.err).toMatch(/CLI_OPTION.*--checkpoint/);
  });

  it('refuses a keyed log without its key, and reads the unkeyed format with a warning', async () => {
    const r = await runCliInProcess(['audit', 'verify', log]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/AUDIT_KEY.*keyed audit log/);
    const legacy = join(dir, 'legacy.jsonl');
    const audit = await AuditLog.open(legacy, { fsync: false });
    await audit.append({ requestId: 'r', kind: 'send', dataClass: 'x', origin: null, allowed: [], chosen: 'local', why: 'w' });
    await audit.close();
    const ok = await runCliInProcess(['audit', 'verify', legacy]);
    expect(ok.code).toBe(0);
    expect(ok.out).toMatch(/warning: unkeyed log/);
    expect(lastJsonLine(ok.out)).toMatchObject({ ok: true, format: 'unkeyed', records: 1 });
  });
});

describe('tandem audit verify --policy (a log keyed by AWS KMS, credentials from the default chain)', () => {
  const credentials = { accessKeyId: 'AKIACLI', secretAccessKey: 'cli-secret' };
  const fake = new AwsKmsFake({ region: 'eu-central-1', credentials, keys: ['audit-key'], aliases: { audit: 'audit-key' } });
  beforeAll(async () => {
    await fake.start();
  });
  afterAll(async () => {
    await fake.stop();
  });

  it('verifies with the policy\'s auditKey through the SDK, and fails with AUDIT_KEY once Decrypt is denied', async () => {
    const policy = join(dir, 'policy.yaml');
    await writeFile(policy, `version: 1\nclasses: {}\nauditKey: { kind: aws-kms, keyId: alias/audit, region: eu-central-1, endpoint: "${fake.url}" }\n`);
    const source = new AwsKmsSource({ kind: 'aws-kms', keyId: 'alias/audit', region: 'eu-central-1', endpoint: fake.url }, { client: { credentials } });
    const path = join(dir, 'kms.jsonl');
    const audit = await AuditLog.open(path, { keys: source, fsync: false });
    await audit.append({ requestId: 'r', kind: 'write', dataClass: 'x', origin: null, allowed: ['eu'], chosen: 'eu', why: 'allowed' });
    await audit.close();
    await source.close();
    // The child process finds the keys where the SDK's default chain looks: the environment.
    const env = { AWS_ACCESS_KEY_ID: credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey, AWS_PROFILE: '', AWS_SESSION_TOKEN: '' };
    const ok = await runCli(['audit', 'verify', path, '--policy', policy], { env });
    expect(ok.code, ok.stderr).toBe(0);
    expect(lastJsonLine(ok.stdout)).toMatchObject({ ok: true, format: 'keyed', closed: true });
    expect(fake.calls.at(-1)).toMatchObject({ op: 'Decrypt', status: 200 });
    fake.deny.add('Decrypt');
    const denied = await runCli(['audit', 'verify', path, '--policy', policy], { env });
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/AUDIT_KEY.*KMS_ACCESS_DENIED|AUDIT_KEY.*AccessDeniedException/);
  }, 120_000);
});
