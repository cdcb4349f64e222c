// Issue #31 item 10: `tandem audit verify` hashed a re-serialization of each line, so a line with
// a second "chosen" key, or CRLF endings, verified while its raw text showed a value the hash
// never covered. The chain is now checked over each line's raw bytes, and a line must be the
// canonical JSON of its record.
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditLog, GENESIS, verifyAuditFile } from '../../src/residency/audit.js';

let dir: string;
let file: string;
let original: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tandem-audit-raw-'));
  file = join(dir, 'audit.jsonl');
  const log = await AuditLog.open(file, { fsync: false });
  await log.append({ requestId: 'r1', kind: 'send', dataClass: 'health', origin: null, allowed: ['eu-store'], chosen: 'eu-endpoint', why: 'allowed' });
  await log.append({ requestId: 'r1', kind: 'write', dataClass: 'health', origin: null, allowed: ['eu-store'], chosen: 'eu-store', why: 'allowed' });
  await log.append({ requestId: 'r2', kind: 'choice', dataClass: 'public', origin: null, allowed: [], chosen: 'local', why: 'no endpoint allowed' });
  await log.close();
  original = await readFile(file, 'utf8');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function tamperedWith(name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

async function failure(path: string): Promise<{ code?: string; message: string; details?: { line?: number } }> {
  try {
    await verifyAuditFile(path);
  } catch (error) {
    return error as { code?: string; message: string; details?: { line?: number } };
  }
  throw new Error(`${path} verified`);
}

describe('audit verification over raw bytes', () => {
  it('verifies the log as written', async () => {
    expect(await verifyAuditFile(file)).toMatchObject({ records: 3 });
  });

  it('refuses a line holding a second "chosen" the hash never covered, naming the line', async () => {
    const lines = original.split('\n');
    // The reader sees "cn-store" first; JSON.parse keeps the last, original value.
    lines[1] = lines[1]!.replace('"chosen":"eu-store"', '"chosen":"cn-store"').replace(',"hash":', ',"chosen":"eu-store","hash":');
    const path = await tamperedWith('duplicate.jsonl', lines.join('\n'));
    const error = await failure(path);
    expect(error.code).toBe('AUDIT_TAMPERED');
    expect(error.details?.line).toBe(2);
    expect(error.message).toContain(':2:');
    // What `tandem audit verify` prints after "error AUDIT_TAMPERED: " (exit 1).
    expect(error.message).toMatch(new RegExp(`^${path}:2: .*(canonical|duplicate)`));
  });

  it('refuses CRLF line endings', async () => {
    const error = await failure(await tamperedWith('crlf.jsonl', original.replaceAll('\n', '\r\n')));
    expect(error.code).toBe('AUDIT_TAMPERED');
    expect(error.details?.line).toBe(1);
    expect(error.message).toContain('carriage return');
  });

  it('refuses extra spacing that parses to the same record', async () => {
    const lines = original.split('\n');
    lines[2] = lines[2]!.replace('"kind":"choice"', '"kind": "choice"');
    const error = await failure(await tamperedWith('spaced.jsonl', lines.join('\n')));
    expect(error).toMatchObject({ code: 'AUDIT_TAMPERED', details: { line: 3 } });
  });

  it('refuses to extend a log whose raw text does not verify', async () => {
    const path = await tamperedWith('extend.jsonl', original.replaceAll('\n', '\r\n'));
    await expect(AuditLog.open(path, { fsync: false })).rejects.toMatchObject({ code: 'AUDIT_TAMPERED' });
  });

  it('still verifies a log written the way earlier releases wrote it', async () => {
    // JSON.stringify of the whole record, hash over JSON.stringify of it without the hash.
    let prev = GENESIS;
    const lines: string[] = [];
    for (let seq = 1; seq <= 3; seq++) {
      const unsigned = { seq, ts: new Date(0).toISOString(), requestId: `r${seq}`, kind: 'send', dataClass: 'x', origin: null, allowed: ['a'], chosen: 'a', why: 'ü ✓ \u2028', prev };
      const hash = createHash('sha256').update(prev).update('\n').update(JSON.stringify(unsigned)).digest('hex');
      lines.push(JSON.stringify({ ...unsigned, hash }));
      prev = hash;
    }
    const path = await tamperedWith('legacy.jsonl', `${lines.join('\n')}\n`);
    expect(await verifyAuditFile(path)).toEqual({ records: 3, lastHash: prev });
  });
});
