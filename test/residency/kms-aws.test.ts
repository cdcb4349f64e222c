// Envelope data keys from AWS KMS through @aws-sdk/client-kms against a loopback KMS that
// verifies each request's SigV4 signature, target, region and key.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { seal, unseal } from '../../src/residency/envelope.js';
import { AwsKmsSource } from '../../src/residency/kms/aws.js';
import { KeyRing } from '../../src/residency/kms/ring.js';
import { createStores, resultKey } from '../../src/residency/stores/index.js';
import { AwsKmsFake } from '../fakes/kms-aws.js';
import { kmsWorld, type KmsWorld } from './kms-fixture.js';

const credentials = { accessKeyId: 'AKIAEDGE', secretAccessKey: 'edge-secret' };
const fake = new AwsKmsFake({ region: 'eu-central-1', credentials, keys: ['1234abcd-eu'], aliases: { tandem: '1234abcd-eu' } });
const client = { credentials };
let world: KmsWorld | undefined;

beforeAll(async () => {
  await fake.start();
});
afterAll(async () => {
  await fake.stop();
});
afterEach(async () => {
  await world?.close();
  world = undefined;
  fake.calls.length = 0;
  fake.deny.clear();
  fake.answerArn = undefined;
});

const keysYaml = (): string => `  eu-central-1: { kind: aws-kms, keyId: alias/tandem, region: eu-central-1, endpoint: "${fake.url}" }`;

describe('AWS KMS key source', () => {
  it('seals a result in eu-central-1 under a GenerateDataKey data key and opens it through Decrypt, every request signed', async () => {
    world = await kmsWorld(['eu-central-1'], keysYaml(), { aws: { client } });
    const r = await world.box.accept({ requestId: 'req-1', dataClass: 'results', body: Buffer.from('{"label":"zebra"}') });
    expect(r.store).toBe('store-eu-central-1');
    await world.box.drain(5000);
    expect(fake.calls).toEqual([{ op: 'GenerateDataKey', key: 'alias/tandem', status: 200 }]);
    const stored = await world.box.stats();
    expect(stored.delivered).toBe(1);
    // A reader with its own ring (no cache yet) asks KMS once to unwrap, naming the key.
    const reader = KeyRing.forPolicy(world.policy, { aws: { client } });
    const sealed = (await createStores(world.policy).get('store-eu-central-1')!.get(resultKey('req-1'))).body;
    expect(Buffer.from(sealed).toString('latin1')).not.toContain('zebra');
    const opened = await unseal(reader, resultKey('req-1'), sealed);
    expect(Buffer.from(opened.plaintext).toString()).toBe('{"label":"zebra"}');
    expect(fake.calls.at(-1)).toEqual({ op: 'Decrypt', key: 'alias/tandem', status: 200 });
    await reader.close();
  });

  it('reuses one data key for a bounded number of objects, and unwraps it once per reader', async () => {
    const source = new KeyRing({ 'eu-central-1': { kind: 'aws-kms', keyId: 'alias/tandem', region: 'eu-central-1', endpoint: fake.url } }, { aws: { client }, cache: { maxUses: 2 } });
    const key = source.forRegion('eu-central-1');
    const sealed = await Promise.all([1, 2, 3].map((i) => seal(key, `k${i}`, Buffer.from(`body ${i}`))));
    // Three objects, at most two per data key: two GenerateDataKey calls.
    expect(fake.calls.filter((c) => c.op === 'GenerateDataKey')).toHaveLength(2);
    const reader = KeyRing.forPolicy({ version: 1, classes: {}, origins: {}, endpoints: {}, stores: {}, keys: { 'eu-central-1': { kind: 'aws-kms', keyId: 'alias/tandem', region: 'eu-central-1', endpoint: fake.url } } }, { aws: { client } });
    for (const [i, s] of sealed.entries()) expect(Buffer.from((await unseal(reader, `k${i + 1}`, s)).plaintext).toString()).toBe(`body ${i + 1}`);
    expect(fake.calls.filter((c) => c.op === 'Decrypt')).toHaveLength(2);
    await Promise.all([source.close(), reader.close()]);
  });

  it('answers access denied as KMS_ACCESS_DENIED and the outbox accepts nothing', async () => {
    world = await kmsWorld(['eu-central-1'], keysYaml(), { aws: { client } });
    fake.deny.add('GenerateDataKey');
    const error = await world.box.accept({ requestId: 'req-denied', dataClass: 'results', body: Buffer.from('x') }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'KMS_ACCESS_DENIED', retryable: false, details: { sdkError: 'AccessDeniedException', kind: 'aws-kms', keyId: 'alias/tandem' } });
    expect(fake.calls).toEqual([expect.objectContaining({ op: 'GenerateDataKey', status: 400, problem: expect.stringContaining('AccessDeniedException') })]);
    expect(world.box.stats()).toMatchObject({ pending: 0, usedBytes: 0 });
    expect(await world.stored()).toEqual([]);
  });

  it('refuses requests signed with the wrong secret (the fake checks SigV4) as access denied', async () => {
    const wrong = new AwsKmsSource({ kind: 'aws-kms', keyId: 'alias/tandem', region: 'eu-central-1', endpoint: fake.url }, { client: { credentials: { ...credentials, secretAccessKey: 'not-it' } } });
    await expect(wrong.generateDataKey()).rejects.toMatchObject({ code: 'KMS_ACCESS_DENIED', details: { sdkError: 'InvalidSignatureException' } });
    expect(fake.calls[0]).toMatchObject({ status: 400, problem: expect.stringContaining('signature') });
    await wrong.close();
  });

  it('refuses a key whose answer names another region (an alias resolving elsewhere): RESIDENCY_KEY_REGION, nothing written', async () => {
    world = await kmsWorld(['eu-central-1'], keysYaml(), { aws: { client } });
    fake.answerArn = 'arn:aws:kms:us-east-1:111122223333:key/elsewhere';
    const error = await world.box.accept({ requestId: 'req-region', dataClass: 'results', body: Buffer.from('x') }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'RESIDENCY_KEY_REGION', details: { answeredRegion: 'us-east-1', region: 'eu-central-1' } });
    expect(world.box.stats()).toMatchObject({ pending: 0, usedBytes: 0 });
    expect(await world.stored()).toEqual([]);
  });

  it('refuses a store region whose declared key lives in another region before asking KMS', async () => {
    world = await kmsWorld(['eu-central-1', 'eu-west-1'], `${keysYaml()}\n  eu-west-1: { kind: aws-kms, keyId: alias/tandem, region: eu-central-1, endpoint: "${fake.url}" }`, { aws: { client } });
    const error = await world.box.accept({ requestId: 'req-west', dataClass: 'results', body: Buffer.from('x'), store: 'store-eu-west-1' }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'RESIDENCY_WRITE_DENIED' });
    expect((error as Error).message).toMatch(/key for region eu-west-1 \(aws-kms\) lives in eu-central-1/);
    expect(fake.calls).toEqual([]);
    expect(await world.stored()).toEqual([]);
  });

  it('refuses a data key blob unwrapped under another key (Decrypt names the key)', async () => {
    const other = new AwsKmsFake({ region: 'eu-central-1', credentials, keys: ['other-key'], aliases: { tandem: 'other-key' } });
    await other.start();
    try {
      const a = new AwsKmsSource({ kind: 'aws-kms', keyId: 'alias/tandem', region: 'eu-central-1', endpoint: fake.url }, { client });
      const b = new AwsKmsSource({ kind: 'aws-kms', keyId: 'alias/tandem', region: 'eu-central-1', endpoint: other.url }, { client });
      const { wrapped } = await a.generateDataKey();
      await expect(b.decryptDataKey(wrapped)).rejects.toMatchObject({ code: 'KMS_REJECTED', details: { sdkError: 'InvalidCiphertextException' } });
      await Promise.all([a.close(), b.close()]);
    } finally {
      await other.stop();
    }
  });
});
