// Envelope data keys wrapped by Google Cloud KMS through @google-cloud/kms (its REST fallback
// over a plain-HTTP endpoint) against a loopback KMS that checks the bearer token, the resource
// name and the routing header of each request.
import { googleAuthLibrary } from 'google-gax';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { seal, unseal } from '../../src/residency/envelope.js';
import { GcpKmsSource } from '../../src/residency/kms/gcp.js';
import { KeyRing } from '../../src/residency/kms/ring.js';
import { PolicyError } from '../../src/residency/errors.js';
import { parsePolicy } from '../../src/residency/policy.js';
import { createStores, resultKey } from '../../src/residency/stores/index.js';
import { GcpKmsFake } from '../fakes/kms-gcp.js';
import { kmsWorld, type KmsWorld } from './kms-fixture.js';

const KEY = 'projects/tandem/locations/europe-west3/keyRings/edge/cryptoKeys/results';
const fake = new GcpKmsFake({ token: 'ya29.edge-token', keys: [KEY] });
let world: KmsWorld | undefined;

function authWith(token: string): InstanceType<typeof googleAuthLibrary.OAuth2Client> {
  const auth = new googleAuthLibrary.OAuth2Client();
  auth.setCredentials({ access_token: token, expiry_date: Date.now() + 3600_000 });
  return auth;
}
const gcp = (token = 'ya29.edge-token') => ({ client: { authClient: authWith(token) } });

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
});

const decl = () => ({ kind: 'gcp-kms' as const, keyName: KEY, region: 'europe-west3', endpoint: fake.url });
const keysYaml = (): string => `  europe-west3: { kind: gcp-kms, keyName: "${KEY}", region: europe-west3, endpoint: "${fake.url}" }`;

describe('Google Cloud KMS key source', () => {
  it('wraps a locally drawn data key with Encrypt and unwraps it with Decrypt for a result kept in europe-west3', async () => {
    world = await kmsWorld(['europe-west3'], keysYaml(), { gcp: gcp() });
    await world.box.accept({ requestId: 'req-1', dataClass: 'results', body: Buffer.from('{"label":"heron"}') });
    await world.box.drain(5000);
    expect(fake.calls).toEqual([{ op: 'encrypt', key: KEY, status: 200 }]);
    const sealed = (await createStores(world.policy).get('store-europe-west3')!.get(resultKey('req-1'))).body;
    const reader = KeyRing.forPolicy(world.policy, { gcp: gcp() });
    expect(Buffer.from((await unseal(reader, resultKey('req-1'), sealed)).plaintext).toString()).toBe('{"label":"heron"}');
    expect(fake.calls.at(-1)).toEqual({ op: 'decrypt', key: KEY, status: 200 });
    await reader.close();
  });

  it('answers PERMISSION_DENIED as KMS_ACCESS_DENIED; the outbox accepts nothing', async () => {
    world = await kmsWorld(['europe-west3'], keysYaml(), { gcp: gcp() });
    fake.deny.add('encrypt');
    const error = await world.box.accept({ requestId: 'req-denied', dataClass: 'results', body: Buffer.from('x') }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'KMS_ACCESS_DENIED', details: { kind: 'gcp-kms', keyId: KEY, code: 403 } });
    expect(world.box.stats()).toMatchObject({ pending: 0, usedBytes: 0 });
    expect(await world.stored()).toEqual([]);
  });

  it('a wrong bearer token is refused by the fake and surfaces as access denied', async () => {
    const source = new GcpKmsSource(decl(), gcp('ya29.stolen'));
    await expect(source.generateDataKey()).rejects.toMatchObject({ code: 'KMS_ACCESS_DENIED', details: { code: 401 } });
    expect(fake.calls).toEqual([expect.objectContaining({ op: 'encrypt', status: 401 })]);
    await source.close();
  });

  it('denied Decrypt: a sealed object cannot be opened without the key permission', async () => {
    const source = new GcpKmsSource(decl(), gcp());
    const sealed = await seal(source, 'obj', Buffer.from('secret'));
    fake.deny.add('decrypt');
    await expect(unseal(source, 'obj', sealed)).rejects.toMatchObject({ code: 'KMS_ACCESS_DENIED' });
    await source.close();
  });

  it('refuses a key whose resource name is in another location than its region label, and a store region keyed elsewhere', () => {
    expect(() =>
      parsePolicy(`
version: 1
classes: {}
keys:
  europe-west3: { kind: gcp-kms, keyName: "projects/p/locations/us-central1/keyRings/r/cryptoKeys/k", region: europe-west3 }
`),
    ).toThrow(PolicyError);
    const ring = new KeyRing({ 'europe-west4': { kind: 'gcp-kms', keyName: KEY, region: 'europe-west3' } });
    expect(() => ring.forRegion('europe-west4')).toThrow(expect.objectContaining({ code: 'RESIDENCY_KEY_REGION' }));
  });
});
