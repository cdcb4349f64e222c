// Alibaba Cloud RAM OIDC federation (`identity: { alibaba: … }`) through @alicloud/credentials'
// own oidc_role_arn provider: the OIDC token file is exchanged at a loopback STS that verifies
// the token (RS256 signature, issuer, audience, expiry), the OIDC provider and the role's trust;
// the short-lived STS keys reach ali-oss through its refreshSTSToken hook, and a loopback OSS
// verifies each PutObject's signature, security token and the keys' expiry.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createProviderClient } from '../../src/providers/index.js';
import type { AlibabaIdentity } from '../../src/providers/identity/index.js';
import { createStore, type StoreDecl } from '../../src/residency/index.js';
import { ALIBABA_AUDIENCE, AlibabaStsFake, StsCheckedOssFake } from '../fakes/alibaba-sts.js';
import { OidcIssuer } from '../fakes/oidc.js';
import { isolateEnv } from '../helpers/env.js';

const ROLE = 'acs:ram::1234567890123456:role/tandem-edge';
const PROVIDER = 'acs:ram::1234567890123456:oidc-provider/edge-fleet';
const ENV = ['ALIBABA_CLOUD_ROLE_ARN', 'ALIBABA_CLOUD_OIDC_PROVIDER_ARN', 'ALIBABA_CLOUD_OIDC_TOKEN_FILE', 'ALIBABA_CLOUD_ROLE_SESSION_NAME', 'ALIBABA_CLOUD_STS_REGION',
  'ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED', 'ALIBABA_CLOUD_ACCESS_KEY_ID', 'ALIBABA_CLOUD_ACCESS_KEY_SECRET', 'ALIBABA_CLOUD_SECURITY_TOKEN'];

const issuer = new OidcIssuer();
let sts: AlibabaStsFake;
let oss: StsCheckedOssFake;
let dir: string;
let tokenFile: string;
let restoreEnv: () => void;

beforeAll(async () => {
  sts = await new AlibabaStsFake(issuer, PROVIDER, [ROLE]).start();
  oss = await new StsCheckedOssFake('tandem-results', sts).start();
});
afterAll(async () => {
  await Promise.all([oss.stop(), sts.stop()]);
});
beforeEach(() => {
  restoreEnv = isolateEnv(ENV);
  dir = mkdtempSync(join(tmpdir(), 'tandem-ali-id-'));
  tokenFile = join(dir, 'oidc-token');
  writeFileSync(tokenFile, issuer.mint(ALIBABA_AUDIENCE, { subject: 'device-9' }));
  sts.calls.length = 0;
  sts.lifetimeSeconds = 3600;
  oss.keyCalls.length = 0;
});
afterEach(() => {
  restoreEnv();
  rmSync(dir, { recursive: true, force: true });
});

const identity = (over: Partial<AlibabaIdentity> = {}): { alibaba: AlibabaIdentity } => ({ alibaba: { roleArn: ROLE, oidcProviderArn: PROVIDER, oidcTokenFile: tokenFile, stsEndpoint: sts.url, ...over } });
const decl = (): StoreDecl => ({ type: 'oss', provider: 'alibaba', region: 'cn-shanghai', bucket: 'tandem-results', endpoint: oss.url, pathStyle: true, sse: 'none' } as StoreDecl);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('Alibaba Cloud RAM AssumeRoleWithOIDC', () => {
  it('OSS PutObject with the STS keys and security token: one exchange while they are fresh', async () => {
    const store = createStore('results-cn', decl(), { oss: { identity: identity({ roleSessionName: 'gateway-9' }) } });
    try {
      await store.put('ab/result-1.tde', new Uint8Array([4, 5, 6]));
      await store.put('ab/result-2.tde', new Uint8Array([7]));
      expect([...(oss.objects.get('ab/result-1.tde')?.body ?? [])]).toEqual([4, 5, 6]);
      expect(sts.calls).toEqual([{ status: 200, roleArn: ROLE, roleSessionName: 'gateway-9', accessKeyId: expect.stringMatching(/^STS\./) as unknown, subject: 'device-9' }]);
      expect(oss.keyCalls).toEqual([
        { method: 'PUT', accessKeyId: sts.calls[0]?.accessKeyId, status: 200 },
        { method: 'PUT', accessKeyId: sts.calls[0]?.accessKeyId, status: 200 },
      ]);
    } finally {
      await store.close();
    }
  });

  it('keys are kept while fresh and exchanged again while still valid, within fifteen minutes of expiry', async () => {
    // Fifteen minutes and two seconds: fresh for two seconds, then inside the provider's
    // fifteen-minute window: replaced, while OSS would still take them.
    sts.lifetimeSeconds = 902;
    const store = createStore('results-cn', decl(), { oss: { identity: identity() } });
    try {
      await store.put('ab/1.tde', new Uint8Array([1]));
      await store.put('ab/2.tde', new Uint8Array([2]));
      expect(sts.calls).toHaveLength(1);
      await sleep(2_300);
      await store.put('ab/3.tde', new Uint8Array([3]));
      const keys = sts.calls.map((c) => c.accessKeyId ?? '');
      expect(keys.length).toBeGreaterThanOrEqual(2);
      expect(new Set(keys).size).toBe(keys.length);
      expect(sts.ledger.check(keys[0] ?? '', sts.ledger.keys.get(keys[0] ?? '')?.sessionToken).ok).toBe(true);
      expect(oss.keyCalls.map((c) => c.status)).toEqual([200, 200, 200]);
      expect(oss.keyCalls.at(-1)?.accessKeyId).toBe(keys.at(-1));
    } finally {
      await store.close();
    }
  });

  it('short-lived keys: a store idle past their expiry writes on with fresh ones, and a rotated token file is read', async () => {
    sts.lifetimeSeconds = 2;
    const store = createStore('results-cn', decl(), { oss: { identity: identity() } });
    try {
      await store.put('ab/1.tde', new Uint8Array([1]));
      const first = sts.calls.at(-1)?.accessKeyId ?? '';
      writeFileSync(tokenFile, issuer.mint(ALIBABA_AUDIENCE, { subject: 'device-9-rotated' }));
      await sleep(2_200);
      expect(sts.ledger.check(first, sts.ledger.keys.get(first)?.sessionToken)).toEqual({ ok: false, why: 'expired' });
      await store.put('ab/2.tde', new Uint8Array([2]));
      expect(sts.calls.at(-1)?.subject).toBe('device-9-rotated');
      expect(oss.keyCalls.at(-1)).toEqual({ method: 'PUT', accessKeyId: sts.calls.at(-1)?.accessKeyId, status: 200 });
      expect(oss.keyCalls.every((c) => c.status === 200)).toBe(true);
    } finally {
      await store.close();
    }
  });

  const refusals = [
    { what: 'an expired token', token: () => issuer.mint(ALIBABA_AUDIENCE, { lifetimeSeconds: -60 }), role: ROLE, code: 'AuthenticationFail.OIDCToken.Expired', reason: 'expired-token' },
    { what: 'a token for another audience', token: () => issuer.mint('oss.aliyuncs.com'), role: ROLE, code: 'AuthenticationFail.OIDCToken.AudienceNotMatch', reason: 'wrong-audience' },
    { what: 'a role that does not trust the provider', token: () => issuer.mint(ALIBABA_AUDIENCE), role: 'acs:ram::1234567890123456:role/other', code: 'AuthenticationFail.NoPermission', reason: 'access-denied' },
    { what: 'a token another key signed', token: () => new OidcIssuer().mint(ALIBABA_AUDIENCE), role: ROLE, code: 'AuthenticationFail.OIDCToken.InvalidSignature', reason: 'invalid-token' },
  ];
  for (const r of refusals) {
    it(`${r.what}: STORE_AUTH (reason ${r.reason}, STS code ${r.code}), nothing sent to OSS`, async () => {
      writeFileSync(tokenFile, r.token());
      const store = createStore('results-cn', decl(), { oss: { identity: identity({ roleArn: r.role }) } });
      try {
        await expect(store.put('ab/x.tde', new Uint8Array([1]))).rejects.toMatchObject({ code: 'STORE_AUTH', retryable: false, details: { store: 'results-cn', identity: 'alibaba', serverCode: r.code, reason: r.reason, providerCode: 'PROVIDER_AUTH' } });
      } finally {
        await store.close();
      }
      expect(sts.calls.map((c) => c.code)).toEqual([r.code]);
      expect(oss.keyCalls).toEqual([]);
    });
  }

  it('an STS that cannot be reached is a retryable failure (STORE_UNAVAILABLE)', async () => {
    const store = createStore('results-cn', decl(), { oss: { identity: identity({ stsEndpoint: 'http://127.0.0.1:9' }) } });
    try {
      await expect(store.put('ab/x.tde', new Uint8Array([1]))).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE', retryable: true });
    } finally {
      await store.close();
    }
  });

  it('plain HTTP to an STS that is not loopback is refused; PAI-EAS takes no identity (its signature has no place for a security token)', async () => {
    const store = createStore('results-cn', decl(), { oss: { identity: identity({ stsEndpoint: 'http://sts.example.com' }) } });
    await expect(store.put('ab/x.tde', new Uint8Array([1]))).rejects.toMatchObject({ code: 'STORE_CONFIG' });
    expect(() => createProviderClient({ name: 'eas', kind: 'pai-eas', region: 'cn-shanghai', url: 'http://127.0.0.1:9', token: 't', identity: identity() }))
      .toThrow(expect.objectContaining({ code: 'PROVIDER_CONFIG', message: expect.stringMatching(/pai-eas takes no identity/) as unknown }));
    expect(sts.calls).toEqual([]);
  });
});
