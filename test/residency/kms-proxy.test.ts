/**
 * The KMS clients on the key ring's proxy route (issue 29, docs/guide/network.md): AWS KMS
 * (@aws-sdk/client-kms), Google Cloud KMS (@google-cloud/kms's REST fallback, with ADC's token
 * exchange) and Alibaba Cloud KMS (@alicloud/kms20160120) against loopback KMS fakes, behind a
 * loopback CONNECT proxy that records each tunnel's target. With `proxy`, or the environment's
 * variables as a loader hands them over (`proxyEnv`), every call goes through the proxy; with
 * NO_PROXY matching the KMS, or `proxy: false`, none does; a refused tunnel is KMS_CONFIG.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { proxyEnvironment, type ProxyEnvironment } from '../../src/providers/index.js';
import { KeyRing, type KeyRingOptions } from '../../src/residency/kms/ring.js';
import type { KeyDecl } from '../../src/residency/policy.js';
import { ConnectProxy } from '../fakes/connect-proxy.js';
import { AlibabaKmsFake } from '../fakes/kms-alibaba.js';
import { AwsKmsFake } from '../fakes/kms-aws.js';
import { GcpKmsFake } from '../fakes/kms-gcp.js';
import { isolateEnv } from '../helpers/env.js';

// The SDKs that read proxy variables themselves must see none of the machine's.
const restoreEnv = isolateEnv(['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy', 'NO_PROXY', 'no_proxy', 'grpc_proxy', 'GOOGLE_APPLICATION_CREDENTIALS']);

const awsCredentials = { accessKeyId: 'AKIAEDGE', secretAccessKey: 'edge-secret' };
const aws = new AwsKmsFake({ region: 'eu-central-1', credentials: awsCredentials, keys: ['1234abcd-eu'], aliases: { tandem: '1234abcd-eu' } });
const GCP_KEY = 'projects/tandem/locations/europe-west3/keyRings/edge/cryptoKeys/results';
const gcp = new GcpKmsFake({ token: 'ya29.edge-token', keys: [GCP_KEY] });
const alibaba = new AlibabaKmsFake({ region: 'cn-shanghai', accessKeyId: 'LTAIedge', accessKeySecret: 'edge-secret', keys: ['key-sh-1'], aliases: { tandem: 'key-sh-1' } });
const proxy = new ConnectProxy();
const forbidding = new ConnectProxy({ refuse: 403 });

/** A Google token service for an `external_account` credential: ADC's exchange, on the route too. */
let tokenService: Server;
let tokenUrl: string;
let externalAccount: Record<string, unknown>;

beforeAll(async () => {
  await Promise.all([aws.start(), gcp.start(), alibaba.start(), proxy.start(), forbidding.start()]);
  tokenService = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ access_token: 'ya29.edge-token', issued_token_type: 'urn:ietf:params:oauth:token-type:access_token', token_type: 'Bearer', expires_in: 3600 })));
  });
  await new Promise<void>((resolve) => tokenService.listen(0, '127.0.0.1', resolve));
  tokenUrl = `http://127.0.0.1:${(tokenService.address() as AddressInfo).port}/v1/token`;
  // Refreshed through the auth client's own transport, the one the route's adapter is put on.
  // (An `external_account`'s STS exchange is not: google-auth-library gives it a Gaxios of its own.)
  externalAccount = {
    type: 'external_account_authorized_user',
    audience: '//iam.googleapis.com/locations/global/workforcePools/edge/providers/fleet',
    client_id: 'tandem-edge',
    client_secret: 'edge-client-secret',
    refresh_token: 'edge-refresh-token',
    token_url: tokenUrl,
  };
});

afterAll(async () => {
  await Promise.all([aws.stop(), gcp.stop(), alibaba.stop(), proxy.stop(), forbidding.stop(), new Promise((resolve) => tokenService.close(resolve))]);
  restoreEnv();
});

interface Kms {
  decl: () => Exclude<KeyDecl, { kind: 'local' }>;
  options: () => KeyRingOptions;
  host: () => string;
  /** Other hosts its calls reach (a token service). */
  others: () => string[];
}

const kinds: Record<string, Kms> = {
  'aws-kms': {
    decl: () => ({ kind: 'aws-kms', keyId: 'alias/tandem', region: 'eu-central-1', endpoint: aws.url }),
    options: () => ({ aws: { client: { credentials: awsCredentials } } }),
    host: () => new URL(aws.url).host,
    others: () => [],
  },
  'gcp-kms': {
    decl: () => ({ kind: 'gcp-kms', keyName: GCP_KEY, region: 'europe-west3', endpoint: gcp.url }),
    // ADC from a credential file's content: the auth client is the SDK's, built on the route.
    options: () => ({ gcp: { client: { credentials: externalAccount } } }),
    host: () => new URL(gcp.url).host,
    others: () => [new URL(tokenUrl).host],
  },
  'alibaba-kms': {
    decl: () => ({ kind: 'alibaba-kms', keyId: 'alias/tandem', region: 'cn-shanghai', endpoint: alibaba.url }),
    options: () => ({ alibaba: { client: { accessKeyId: 'LTAIedge', accessKeySecret: 'edge-secret' } } }),
    host: () => new URL(alibaba.url).host,
    others: () => [],
  },
};

const environment = (url: string, noProxy?: string): ProxyEnvironment => proxyEnvironment({ HTTPS_PROXY: url, HTTP_PROXY: url, ...(noProxy ? { NO_PROXY: noProxy } : {}) });

/** GenerateDataKey (or Encrypt) and Decrypt through a ring with `net`; the key must round-trip. */
async function roundTrip(kms: Kms, net: Pick<KeyRingOptions, 'proxy' | 'proxyEnv'>): Promise<void> {
  const decl = kms.decl();
  const ring = new KeyRing({ [decl.region]: decl }, { ...kms.options(), ...net, cache: { maxUses: 1, maxEntries: 0 } });
  try {
    const { plaintext, wrapped } = await ring.forRegion(decl.region).generateDataKey();
    expect(Buffer.from(await ring.decryptDataKey(wrapped))).toEqual(Buffer.from(plaintext));
  } finally {
    await ring.close();
  }
}

describe.each(Object.entries(kinds))('%s', (_kind, kms) => {
  const reset = (): void => {
    proxy.reset();
    forbidding.reset();
  };

  it('goes through the proxy `proxy` names', async () => {
    reset();
    await roundTrip(kms, { proxy: proxy.url() });
    for (const host of [kms.host(), ...kms.others()]) expect(proxy.count(host)).toBeGreaterThan(0);
  });

  it('goes through the proxy the environment names, as a loader hands it over', async () => {
    reset();
    await roundTrip(kms, { proxyEnv: environment(proxy.url()) });
    for (const host of [kms.host(), ...kms.others()]) expect(proxy.count(host)).toBeGreaterThan(0);
  });

  it('goes direct when NO_PROXY matches the KMS host (by host:port, by CIDR), and through the proxy for another port', async () => {
    reset();
    await roundTrip(kms, { proxyEnv: environment(proxy.url(), kms.host()) });
    // Only the KMS is named: a token service elsewhere still goes through the proxy.
    expect(proxy.count(kms.host())).toBe(0);
    for (const host of kms.others()) expect(proxy.count(host)).toBeGreaterThan(0);
    reset();
    await roundTrip(kms, { proxyEnv: environment(proxy.url(), '127.0.0.0/8') });
    expect(proxy.count()).toBe(0);
    reset();
    const [, port] = kms.host().split(':');
    await roundTrip(kms, { proxyEnv: environment(proxy.url(), `127.0.0.1:${Number(port) + 1}`) });
    expect(proxy.count(kms.host())).toBeGreaterThan(0);
  });

  it('goes direct with `proxy: false` (or none), whatever the environment says, the process\'s included', async () => {
    reset();
    await roundTrip(kms, { proxy: false, proxyEnv: environment(proxy.url()) });
    await roundTrip(kms, { proxy: 'none', proxyEnv: environment(forbidding.url()) });
    // gaxios (under the Google SDK) reads the process's variables itself: the route must win.
    const restore = isolateEnv(['HTTPS_PROXY', 'HTTP_PROXY']);
    process.env['HTTPS_PROXY'] = process.env['HTTP_PROXY'] = forbidding.url();
    try {
      await roundTrip(kms, { proxy: false });
    } finally {
      restore();
    }
    expect(proxy.count() + forbidding.refused.length).toBe(0);
  });

  it('fails with KMS_CONFIG, naming the proxy, when the proxy refuses the tunnel', async () => {
    reset();
    const error = await roundTrip(kms, { proxy: forbidding.url() }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'KMS_CONFIG', details: { proxyStatus: 403 } });
    expect(forbidding.refused.length).toBeGreaterThan(0);
  });
});

it('a proxy variable that is not a proxy URL is KMS_CONFIG at the first use of a key', async () => {
  const kms = kinds['aws-kms']!;
  const decl = kms.decl();
  const ring = new KeyRing({ [decl.region]: decl }, { ...kms.options(), proxyEnv: { https: 'ftp://proxy.corp:21' } });
  expect(() => ring.forRegion(decl.region)).toThrow(expect.objectContaining({ code: 'KMS_CONFIG' }));
  await ring.close();
});
