// One policy, three clouds' KMSs: each result is sealed under the key the policy names for its
// store's region, through that cloud's SDK, so a cn-shanghai result's data key comes from
// Alibaba Cloud KMS in cn-shanghai, a europe-west3 one's from Cloud KMS in europe-west3, an
// eu-central-1 one's from AWS KMS in eu-central-1. Each fake checks its requests' credentials.
import { googleAuthLibrary } from 'google-gax';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { unseal, type WrappedKey } from '../../src/residency/envelope.js';
import { KeyRing } from '../../src/residency/kms/ring.js';
import { parsePolicy } from '../../src/residency/policy.js';
import { createStores, resultKey } from '../../src/residency/stores/index.js';
import { AlibabaKmsFake } from '../fakes/kms-alibaba.js';
import { AwsKmsFake } from '../fakes/kms-aws.js';
import { GcpKmsFake } from '../fakes/kms-gcp.js';
import { kmsWorld, type KmsWorld } from './kms-fixture.js';

const GCP_KEY = 'projects/tandem/locations/europe-west3/keyRings/edge/cryptoKeys/results';
const awsCredentials = { accessKeyId: 'AKIAEDGE', secretAccessKey: 'edge-secret' };
const aws = new AwsKmsFake({ region: 'eu-central-1', credentials: awsCredentials, keys: ['key-eu'], aliases: { tandem: 'key-eu' } });
const gcp = new GcpKmsFake({ token: 'ya29.edge-token', keys: [GCP_KEY] });
const ali = new AlibabaKmsFake({ region: 'cn-shanghai', accessKeyId: 'LTAIedge', accessKeySecret: 'edge-secret', keys: ['key-sh'], aliases: { tandem: 'key-sh' } });
let world: KmsWorld | undefined;

function options() {
  const auth = new googleAuthLibrary.OAuth2Client();
  auth.setCredentials({ access_token: 'ya29.edge-token', expiry_date: Date.now() + 3600_000 });
  return { aws: { client: { credentials: awsCredentials } }, gcp: { client: { authClient: auth } }, alibaba: { client: { accessKeyId: 'LTAIedge', accessKeySecret: 'edge-secret' } } };
}

const keysYaml = (): string => [
  `  eu-central-1: { kind: aws-kms, keyId: alias/tandem, region: eu-central-1, endpoint: "${aws.url}" }`,
  `  europe-west3: { kind: gcp-kms, keyName: "${GCP_KEY}", region: europe-west3, endpoint: "${gcp.url}" }`,
  `  cn-shanghai: { kind: alibaba-kms, keyId: alias/tandem, region: cn-shanghai, endpoint: "${ali.url}" }`,
].join('\n');

/** The wrapped data key named by a sealed object's header (magic, u32 length, JSON). */
function wrappedKeyOf(sealed: Uint8Array): WrappedKey {
  const buf = Buffer.from(sealed);
  return (JSON.parse(buf.subarray(8, 8 + buf.readUInt32BE(4)).toString('utf8')) as { key: WrappedKey }).key;
}

beforeAll(async () => {
  await Promise.all([aws.start(), gcp.start(), ali.start()]);
});
afterAll(async () => {
  await Promise.all([aws.stop(), gcp.stop(), ali.stop()]);
});
afterEach(async () => {
  await world?.close();
  world = undefined;
  aws.calls.length = 0;
  gcp.calls.length = 0;
  ali.calls.length = 0;
});

describe('KMS chosen per region by the residency policy', () => {
  it('seals each result under its region\'s key, in its region\'s KMS, and a reader with the policy opens all three', async () => {
    const regions = ['eu-central-1', 'europe-west3', 'cn-shanghai'];
    world = await kmsWorld(regions, keysYaml(), options());
    for (const region of regions) await world.box.accept({ requestId: `req-${region}`, dataClass: 'results', body: Buffer.from(`result for ${region}`), store: `store-${region}` });
    await world.box.drain(10_000);
    expect(world.box.stats()).toMatchObject({ delivered: 3, pending: 0 });
    // One data key from each KMS, none from another cloud's.
    expect(aws.calls).toEqual([{ op: 'GenerateDataKey', key: 'alias/tandem', status: 200 }]);
    expect(gcp.calls).toEqual([{ op: 'encrypt', key: GCP_KEY, status: 200 }]);
    expect(ali.calls).toEqual([{ op: 'GenerateDataKey', key: 'alias/tandem', status: 200 }]);
    const stores = createStores(world.policy);
    const reader = KeyRing.forPolicy(world.policy, options());
    try {
      const expected = { 'eu-central-1': 'aws-kms', 'europe-west3': 'gcp-kms', 'cn-shanghai': 'alibaba-kms' } as const;
      for (const region of regions) {
        const sealed = (await stores.get(`store-${region}`)!.get(resultKey(`req-${region}`))).body;
        // The object names the key that wraps its data key: that region's, of that region's cloud.
        expect(wrappedKeyOf(sealed)).toMatchObject({ kind: expected[region as keyof typeof expected], region });
        expect(Buffer.from((await unseal(reader, resultKey(`req-${region}`), sealed)).plaintext).toString()).toBe(`result for ${region}`);
      }
    } finally {
      await reader.close();
      await Promise.all([...stores.values()].map((s) => s.close()));
    }
    expect(aws.calls.at(-1)).toMatchObject({ op: 'Decrypt', status: 200 });
    expect(gcp.calls.at(-1)).toMatchObject({ op: 'decrypt', status: 200 });
    expect(ali.calls.at(-1)).toMatchObject({ op: 'Decrypt', status: 200 });
  });

  it('a header cannot send the reader to a KMS the policy does not name for that key', async () => {
    world = await kmsWorld(['cn-shanghai'], keysYaml().split('\n')[2]!, options());
    await world.box.accept({ requestId: 'req-sh', dataClass: 'results', body: Buffer.from('x') });
    await world.box.drain(10_000);
    const stores = createStores(world.policy);
    const sealed = Buffer.from((await stores.get('store-cn-shanghai')!.get(resultKey('req-sh'))).body);
    // Rewrite the header to claim the data key was wrapped by a key in another region.
    const key = wrappedKeyOf(sealed);
    const len = sealed.readUInt32BE(4);
    const header = JSON.parse(sealed.subarray(8, 8 + len).toString('utf8')) as { key: WrappedKey };
    header.key = { ...key, region: 'cn-hangzhou' };
    const h = Buffer.from(JSON.stringify(header));
    const forged = Buffer.concat([sealed.subarray(0, 4), Buffer.alloc(4), h, sealed.subarray(8 + len)]);
    forged.writeUInt32BE(h.length, 4);
    const reader = KeyRing.forPolicy(world.policy, options());
    try {
      await expect(unseal(reader, resultKey('req-sh'), forged)).rejects.toMatchObject({ code: 'ENVELOPE_KEY', message: expect.stringMatching(/alibaba-kms key alias\/tandem \(cn-hangzhou\), which the policy does not declare/) });
    } finally {
      await reader.close();
      await Promise.all([...stores.values()].map((s) => s.close()));
    }
    expect(ali.calls.filter((c) => c.op === 'Decrypt')).toEqual([]);
  });

  it('a key whose identifier names another region than its label is refused when the policy loads', () => {
    expect(() => parsePolicy(`version: 1
classes: {}
keys:
  cn-shanghai: { kind: alibaba-kms, keyId: "acs:kms:cn-hangzhou:1234567890123456:key/key-hz", region: cn-shanghai }
  eu-central-1: { kind: aws-kms, keyId: "arn:aws:kms:us-east-1:111122223333:key/k", region: eu-central-1 }
`)).toThrow(/keys\.cn-shanghai\.region: the key's identifier names region cn-hangzhou[\s\S]*keys\.eu-central-1\.region: the key's identifier names region us-east-1/);
  });
});
