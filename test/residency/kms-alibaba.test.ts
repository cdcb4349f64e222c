// Envelope data keys from Alibaba Cloud KMS through @alicloud/kms20160120 against a loopback KMS
// that recomputes each request's RPC signature (HMAC-SHA1 over the canonical query), and checks
// its timestamp, nonce, version and access key.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { unseal } from '../../src/residency/envelope.js';
import { evaluateWrite } from '../../src/residency/gate.js';
import { AlibabaKmsSource } from '../../src/residency/kms/alibaba.js';
import { KeyRing } from '../../src/residency/kms/ring.js';
import { createStores, resultKey } from '../../src/residency/stores/index.js';
import { AlibabaKmsFake, rpcSignature } from '../fakes/kms-alibaba.js';
import { kmsWorld, type KmsWorld } from './kms-fixture.js';

const fake = new AlibabaKmsFake({ region: 'cn-shanghai', accessKeyId: 'LTAIedge', accessKeySecret: 'edge-secret', keys: ['key-sh-1'], aliases: { tandem: 'key-sh-1' } });
const alibaba = { client: { accessKeyId: 'LTAIedge', accessKeySecret: 'edge-secret' } };
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
});

const keysYaml = (region = 'cn-shanghai'): string => `  cn-shanghai: { kind: alibaba-kms, keyId: alias/tandem, region: ${region}, endpoint: "${fake.url}" }`;

describe('Alibaba Cloud KMS key source', () => {
  it('the fake computes the documented RPC signature (a known vector)', () => {
    // The example of Alibaba Cloud's RPC signature documentation (secret "testsecret").
    const params = {
      AccessKeyId: 'testid',
      Action: 'DescribeRegions',
      Format: 'XML',
      SignatureMethod: 'HMAC-SHA1',
      SignatureNonce: '3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf',
      SignatureVersion: '1.0',
      Timestamp: '2016-02-23T12:46:24Z',
      Version: '2014-05-26',
    };
    expect(rpcSignature('GET', params, 'testsecret')).toBe('OLeaidS1JvxuMvnyHOwuJ+uX5qY=');
  });

  it('seals a cn-shanghai result under a GenerateDataKey data key from cn-shanghai and opens it through Decrypt', async () => {
    world = await kmsWorld(['cn-shanghai'], keysYaml(), { alibaba });
    await world.box.accept({ requestId: 'req-1', dataClass: 'results', body: Buffer.from('{"label":"panda"}') });
    await world.box.drain(5000);
    expect(fake.calls).toEqual([{ op: 'GenerateDataKey', key: 'alias/tandem', status: 200 }]);
    const sealed = (await createStores(world.policy).get('store-cn-shanghai')!.get(resultKey('req-1'))).body;
    const reader = KeyRing.forPolicy(world.policy, { alibaba });
    expect(Buffer.from((await unseal(reader, resultKey('req-1'), sealed)).plaintext).toString()).toBe('{"label":"panda"}');
    expect(fake.calls.at(-1)).toMatchObject({ op: 'Decrypt', status: 200 });
    await reader.close();
  });

  it('answers Forbidden.RAM as KMS_ACCESS_DENIED; the outbox accepts nothing', async () => {
    world = await kmsWorld(['cn-shanghai'], keysYaml(), { alibaba });
    fake.deny.add('GenerateDataKey');
    const error = await world.box.accept({ requestId: 'req-denied', dataClass: 'results', body: Buffer.from('x') }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'KMS_ACCESS_DENIED', details: { kind: 'alibaba-kms', serviceCode: 'Forbidden.RAM', status: 403 } });
    expect(world.box.stats()).toMatchObject({ pending: 0, usedBytes: 0 });
    expect(await world.stored()).toEqual([]);
  });

  it('a wrong secret fails the fake\'s signature check and surfaces as access denied', async () => {
    const source = new AlibabaKmsSource({ kind: 'alibaba-kms', keyId: 'alias/tandem', region: 'cn-shanghai', endpoint: fake.url }, { client: { accessKeyId: 'LTAIedge', accessKeySecret: 'guessed' } });
    await expect(source.generateDataKey()).rejects.toMatchObject({ code: 'KMS_ACCESS_DENIED', details: { serviceCode: 'SignatureDoesNotMatch' } });
    expect(fake.calls).toEqual([expect.objectContaining({ status: 400, problem: expect.stringContaining('SignatureDoesNotMatch') })]);
  });

  it('a cn-shanghai result whose key lives in cn-hangzhou is refused by the policy before KMS is asked or anything is written', async () => {
    world = await kmsWorld(['cn-shanghai'], keysYaml('cn-hangzhou').replace(`endpoint: "${fake.url}"`, 'endpoint: "https://kms.cn-hangzhou.aliyuncs.com"'), { alibaba });
    expect(evaluateWrite(world.policy, 'results', undefined, 'store-cn-shanghai')).toMatchObject({ allowed: false, why: expect.stringMatching(/lives in cn-hangzhou/) });
    const error = await world.box.accept({ requestId: 'req-hz', dataClass: 'results', body: Buffer.from('x') }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'RESIDENCY_WRITE_DENIED' });
    expect(fake.calls).toEqual([]);
    expect(world.box.stats()).toMatchObject({ pending: 0, usedBytes: 0 });
    expect(await world.stored()).toEqual([]);
  });

  it('a KMS endpoint in another region than its key label is refused at policy load', async () => {
    await expect(kmsWorld(['cn-shanghai'], keysYaml().replace(`endpoint: "${fake.url}"`, 'endpoint: "https://kms-vpc.cn-beijing.aliyuncs.com"'))).rejects.toMatchObject({
      code: 'RESIDENCY_POLICY_INVALID',
      message: expect.stringMatching(/keys\.cn-shanghai\.endpoint: the key is labelled cn-shanghai but its URL kms-vpc\.cn-beijing\.aliyuncs\.com is in cn-beijing/),
    });
  });
});
