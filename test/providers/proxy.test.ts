/**
 * Outbound proxies (issue 29, docs/guide/network.md): every provider client (SageMaker, Vertex
 * REST and gRPC, PAI-EAS, OIP) and every store (S3, GCS, OSS) against loopback services, through
 * a loopback CONNECT proxy that records each tunnel's target. With a `proxy` setting, or with
 * HTTPS_PROXY / HTTP_PROXY handed over as the loaders do (`proxyEnv`), every call goes through
 * the proxy; with NO_PROXY matching the host, or `proxy: false`, none does; a proxy that refuses
 * the tunnel fails the call as the proxy's refusal, never as the endpoint's answer.
 */
import { createRequire } from 'node:module';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CloudService } from '../../cloud/server.js';
import { loadEdgeConfig } from '../../edge/config.js';
import { createProviderClient, noProxyMatcher, proxyEnvironment, ProxyRoute, type EndpointConfig, type ProxyEnvironment, type ProxySetting } from '../../src/providers/index.js';
import { validatePolicy, type StoreDecl } from '../../src/residency/policy.js';
import { createStore, resultKey, type StoreFactoryOptions } from '../../src/residency/stores/index.js';
import { ALIBABA_AUDIENCE, AlibabaStsFake, StsCheckedOssFake } from '../fakes/alibaba-sts.js';
import { AWS_STS_AUDIENCE, AwsStsOidcFake } from '../fakes/aws-sts-oidc.js';
import { AwsSignedServicesFake } from '../fakes/aws-signed-services.js';
import { ConnectProxy } from '../fakes/connect-proxy.js';
import { OidcIssuer } from '../fakes/oidc.js';
import { GcsFake } from '../fakes/gcs.js';
import { OssFake } from '../fakes/oss.js';
import { CREDS, modelsDir, randomInput, startService } from '../helpers/cloud.js';
import { isolateEnv } from '../helpers/env.js';

const S3rver = createRequire(import.meta.url)('@20minutes/s3rver');

// The SDKs that read proxy variables themselves (gaxios, grpc-js, teeny-request) must see none
// of the machine's: what this file shows is the route's decision alone.
const restoreEnv = isolateEnv(['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy', 'NO_PROXY', 'no_proxy', 'grpc_proxy']);

interface Net {
  proxy?: ProxySetting;
  proxyEnv?: ProxyEnvironment;
}

/** One client or store: a call that must succeed, the `host:port` it connects to. */
interface Subject {
  target: () => string;
  call: (net: Net) => Promise<void>;
}

let svc: CloudService;
let cleanupModels: () => void;
let dir: string;
let s3rver: { run(): Promise<{ port: number }>; close(): Promise<void> };
let s3Url: string;
const oss = new OssFake('results-cn', { AKID: 'right-secret' });
const gcs = new GcsFake('results-eu');
const proxy = new ConnectProxy();
const guarded = new ConnectProxy({ credentials: 'tandem:s3cret' });
const forbidding = new ConnectProxy({ refuse: 403 });

beforeAll(async () => {
  const m = modelsDir();
  cleanupModels = m.cleanup;
  svc = await startService(m.dir, { grpcPort: 0 });
  dir = await mkdtemp(join(tmpdir(), 'tandem-proxy-'));
  s3rver = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: join(dir, 's3rver'), configureBuckets: [{ name: 'results-us', configs: [] }] });
  s3Url = `http://127.0.0.1:${(await s3rver.run()).port}`;
  await Promise.all([oss.start(), gcs.start(), proxy.start(), guarded.start(), forbidding.start()]);
});

afterAll(async () => {
  await Promise.all([proxy.stop(), guarded.stop(), forbidding.stop(), oss.stop(), gcs.stop(), s3rver.close()]);
  await svc.drain();
  cleanupModels();
  await rm(dir, { recursive: true, force: true });
  restoreEnv();
});

const hostOf = (url: string): string => new URL(url).host;
const tiny = randomInput([1, 3, 8, 10], 3);

function provider(endpoint: () => EndpointConfig): Subject {
  return {
    target: () => hostOf(endpoint().url ?? ''),
    call: async (net) => {
      const client = createProviderClient({ ...endpoint(), ...net }, { sagemaker: { credentials: CREDS.aws } });
      try {
        const res = await client.infer({ model: 'cls', inputs: tiny }, { deadline: Date.now() + 60_000 });
        expect(Object.keys(res.outputs).length).toBeGreaterThan(0);
      } finally {
        await client.close();
      }
    },
  };
}

function decl(value: Record<string, unknown>): StoreDecl {
  return validatePolicy({ version: 1, classes: {}, stores: { s: value } }).stores['s']!;
}

let round = 0;
function store(url: () => string, declaration: () => StoreDecl, options: (net: Net) => StoreFactoryOptions): Subject {
  return {
    target: () => hostOf(url()),
    call: async (net) => {
      const s = createStore('results', declaration(), options(net));
      try {
        const key = resultKey(`proxy-${++round}`);
        await s.put(key, Buffer.from('through the proxy?'));
        expect(Buffer.from((await s.get(key)).body).toString()).toBe('through the proxy?');
      } finally {
        await s.close();
      }
    },
  };
}

const subjects: Record<string, Subject> = {
  sagemaker: provider(() => ({ name: 'sm', kind: 'sagemaker', region: 'eu-central-1', url: svc.url, target: 'tandem-ep' })),
  'vertex-rest': provider(() => ({ name: 'vx', kind: 'vertex', region: 'europe-west4', url: svc.url, project: 'proj', target: 'ep1', token: CREDS.vertexToken })),
  'vertex-grpc': provider(() => ({ name: 'vx-grpc', kind: 'vertex', region: 'europe-west4', url: svc.grpcUrl ?? '', transport: 'grpc', project: 'proj', target: 'ep1', token: CREDS.vertexToken })),
  'pai-eas': provider(() => ({ name: 'eas', kind: 'pai-eas', region: 'cn-shanghai', url: svc.url, target: 'svc', token: CREDS.easToken })),
  oip: provider(() => ({ name: 'oip', kind: 'oip', region: 'local', url: svc.url })),
  s3: store(() => s3Url, () => decl({ type: 's3', region: 'us-east-2', bucket: 'results-us', endpoint: s3Url, forcePathStyle: true }), (net) => ({ s3: { credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' }, maxAttempts: 1, ...net } })),
  gcs: store(() => gcs.url, () => decl({ type: 'gcs', region: 'europe-west3', bucket: 'results-eu', apiEndpoint: gcs.url, projectId: 'test' }), (net) => ({ gcs: { storage: { retryOptions: { autoRetry: false } }, ...net } })),
  oss: store(() => oss.url, () => decl({ type: 'oss', region: 'cn-shanghai', bucket: 'results-cn', endpoint: oss.url, pathStyle: true }), (net) => ({ oss: { credentials: { accessKeyId: 'AKID', accessKeySecret: 'right-secret' }, ...net } })),
};

/** What the loaders hand over for HTTPS_PROXY=HTTP_PROXY=`url` (and NO_PROXY). */
const environment = (url: string, noProxy?: string): ProxyEnvironment => proxyEnvironment({ HTTPS_PROXY: url, HTTP_PROXY: url, ...(noProxy ? { NO_PROXY: noProxy } : {}) });

describe.each(Object.entries(subjects))('%s', (_kind, subject) => {
  const cleared = (): void => {
    for (const p of [proxy, guarded, forbidding]) p.reset();
  };

  it('goes through the proxy its `proxy` setting names, and only there', async () => {
    cleared();
    await subject.call({ proxy: proxy.url() });
    expect(proxy.count(subject.target())).toBeGreaterThan(0);
    expect(proxy.count()).toBe(proxy.count(subject.target()));
  });

  it('goes through the proxy HTTPS_PROXY / HTTP_PROXY name, as a loader hands them over', async () => {
    cleared();
    await subject.call({ proxyEnv: environment(proxy.url()) });
    expect(proxy.count(subject.target())).toBeGreaterThan(0);
  });

  it('goes direct when NO_PROXY matches its host (address, CIDR, host:port, *)', async () => {
    const port = subject.target().split(':')[1];
    for (const noProxy of ['127.0.0.1', 'example.com,127.0.0.0/8', `127.0.0.1:${port}`, '*']) {
      cleared();
      await subject.call({ proxyEnv: environment(proxy.url(), noProxy) });
      expect(proxy.count(), noProxy).toBe(0);
    }
    // A NO_PROXY for another port of the host does not match: the call takes the proxy.
    cleared();
    await subject.call({ proxyEnv: environment(proxy.url(), `127.0.0.1:${Number(port) + 1}`) });
    expect(proxy.count(subject.target())).toBeGreaterThan(0);
  });

  it('goes direct with `proxy: false`, whatever the environment says', async () => {
    cleared();
    await subject.call({ proxy: false, proxyEnv: environment(proxy.url()) });
    await subject.call({ proxy: 'none', proxyEnv: environment(proxy.url()) });
    expect(proxy.count()).toBe(0);
  });

  it('uses a `proxy` over the environment, and over NO_PROXY', async () => {
    cleared();
    await subject.call({ proxy: guarded.url('tandem:s3cret'), proxyEnv: environment(proxy.url(), '*') });
    expect(proxy.count()).toBe(0);
    expect(guarded.count(subject.target())).toBeGreaterThan(0);
    // Every call carried the credentials: none refused, not even a closed client's (an earlier
    // test's Vertex gRPC channel, refused by this proxy, used to reconnect after its close).
    expect(guarded.refused).toEqual([]);
  });

  it('fails as the proxy\'s refusal when the proxy wants credentials (407)', async () => {
    cleared();
    const error = (await subject.call({ proxy: guarded.url() }).then(() => undefined, (e: unknown) => e)) as { code?: string; message?: string } | undefined;
    expect(error, 'the call should fail').toBeDefined();
    expect(error?.code).toBe(_kind === 's3' || _kind === 'gcs' || _kind === 'oss' ? 'STORE_CONFIG' : 'PROVIDER_PROXY');
    expect(error?.message).toMatch(/407/);
    expect(guarded.refused.length).toBeGreaterThan(0);
    expect(guarded.count()).toBe(0);
  });
});

describe.each(['sagemaker', 'vertex-rest', 'vertex-grpc', 'pai-eas', 'oip', 's3', 'gcs', 'oss'])('%s, a proxy that forbids the tunnel (403)', (kind) => {
  it('fails with the proxy\'s code, not the endpoint\'s 403 (auth)', async () => {
    forbidding.reset();
    const subject = subjects[kind]!;
    const error = (await subject.call({ proxy: forbidding.url() }).then(() => undefined, (e: unknown) => e)) as { code?: string; message?: string } | undefined;
    expect(error?.code).toBe(kind === 's3' || kind === 'gcs' || kind === 'oss' ? 'STORE_CONFIG' : 'PROVIDER_PROXY');
    expect(error?.message).toMatch(/proxy/);
    expect(forbidding.refused.length).toBeGreaterThan(0);
  });
});

describe("the endpoint's own refusal, through a proxy that lets the tunnel through", () => {
  it('stays the endpoint\'s: PROVIDER_AUTH for a wrong PAI-EAS token, STORE_AUTH for a wrong OSS secret', async () => {
    proxy.reset();
    const eas = createProviderClient({ name: 'eas', kind: 'pai-eas', region: 'cn-shanghai', url: svc.url, target: 'svc', token: 'not-the-token', proxy: proxy.url() });
    try {
      await expect(eas.infer({ model: 'cls', inputs: tiny })).rejects.toMatchObject({ code: 'PROVIDER_AUTH' });
    } finally {
      await eas.close();
    }
    const s = createStore('results', decl({ type: 'oss', region: 'cn-shanghai', bucket: 'results-cn', endpoint: oss.url, pathStyle: true }), { oss: { credentials: { accessKeyId: 'AKID', accessKeySecret: 'wrong-secret' }, proxy: proxy.url() } });
    await expect(s.put(resultKey('wrong-secret'), Buffer.from('x'))).rejects.toMatchObject({ code: 'STORE_AUTH' });
    expect(proxy.count(hostOf(svc.url))).toBeGreaterThan(0);
    expect(proxy.count(hostOf(oss.url))).toBeGreaterThan(0);
  });
});

describe('the credential service of an AWS web identity', () => {
  const ROLE = 'arn:aws:iam::123456789012:role/tandem-edge';
  const AWS_ENV = ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE', 'AWS_CONFIG_FILE', 'AWS_SHARED_CREDENTIALS_FILE', 'AWS_WEB_IDENTITY_TOKEN_FILE', 'AWS_ROLE_ARN', 'AWS_ENDPOINT_URL', 'AWS_ENDPOINT_URL_STS', 'AWS_EC2_METADATA_DISABLED', 'AWS_REGION', 'AWS_DEFAULT_REGION'];

  it('takes the route of the SageMaker client and of the S3 store: STS through the proxy, or direct under NO_PROXY', async () => {
    const issuer = new OidcIssuer();
    const sts = await new AwsStsOidcFake(issuer, [ROLE]).start();
    const services = await new AwsSignedServicesFake(sts.ledger).start();
    const restore = isolateEnv(AWS_ENV);
    process.env['AWS_EC2_METADATA_DISABLED'] = 'true';
    try {
      const tokenFile = join(dir, 'web-identity-token');
      await writeFile(tokenFile, issuer.mint(AWS_STS_AUDIENCE, { subject: 'device-1' }));
      const identity = { aws: { roleArn: ROLE, webIdentityTokenFile: tokenFile, stsEndpoint: sts.url } };
      const input = { x: { dtype: 'float32' as const, dims: [1, 2], data: new Float32Array([1, 2]) } };
      const run = async (net: Net): Promise<void> => {
        const client = createProviderClient({ name: 'sm-id', kind: 'sagemaker', region: 'eu-central-1', url: services.url, target: 'tandem-ep', identity, ...net });
        try {
          await client.infer({ model: 'cls', inputs: input }, { deadline: Date.now() + 60_000 });
        } finally {
          await client.close();
        }
        const s3 = createStore('s3-id', decl({ type: 's3', region: 'eu-central-1', bucket: 'results-eu', endpoint: services.url, forcePathStyle: true }), { s3: { identity, maxAttempts: 1, ...net } });
        try {
          await s3.put(resultKey(`id-${++round}`), Buffer.from('x'));
        } finally {
          await s3.close();
        }
      };
      proxy.reset();
      await run({ proxyEnv: environment(proxy.url()) });
      // Two clients, each its own exchange: both STS calls and both service calls tunnelled.
      expect(sts.calls.map((c) => c.status)).toEqual([200, 200]);
      expect(proxy.count(hostOf(sts.url))).toBeGreaterThanOrEqual(2);
      expect(proxy.count(hostOf(services.url))).toBeGreaterThanOrEqual(2);
      proxy.reset();
      sts.calls.length = 0;
      await run({ proxyEnv: environment(proxy.url(), hostOf(sts.url)) });
      expect(sts.calls.length).toBe(2);
      expect(proxy.count(hostOf(sts.url))).toBe(0);
      expect(proxy.count(hostOf(services.url))).toBeGreaterThanOrEqual(2);
    } finally {
      restore();
      await services.stop();
      await sts.stop();
    }
  });
});

describe('the STS exchange of an Alibaba Cloud identity (an `oss` store)', () => {
  const ROLE = 'acs:ram::1234567890123456:role/tandem-edge';
  const PROVIDER = 'acs:ram::1234567890123456:oidc-provider/edge-fleet';
  const ALI_ENV = ['ALIBABA_CLOUD_ROLE_ARN', 'ALIBABA_CLOUD_OIDC_PROVIDER_ARN', 'ALIBABA_CLOUD_OIDC_TOKEN_FILE', 'ALIBABA_CLOUD_ACCESS_KEY_ID', 'ALIBABA_CLOUD_ACCESS_KEY_SECRET', 'ALIBABA_CLOUD_SECURITY_TOKEN'];

  it('takes the store\'s route: through the proxy, direct under NO_PROXY or `proxy: false`, and a refused tunnel is STORE_CONFIG', async () => {
    const issuer = new OidcIssuer();
    const sts = await new AlibabaStsFake(issuer, PROVIDER, [ROLE]).start();
    const federatedOss = await new StsCheckedOssFake('tandem-results', sts).start();
    const restore = isolateEnv(ALI_ENV);
    try {
      const tokenFile = join(dir, 'alibaba-oidc-token');
      await writeFile(tokenFile, issuer.mint(ALIBABA_AUDIENCE, { subject: 'device-7' }));
      const identity = { alibaba: { roleArn: ROLE, oidcProviderArn: PROVIDER, oidcTokenFile: tokenFile, stsEndpoint: sts.url } };
      const put = async (net: Net): Promise<void> => {
        const s = createStore('oss-id', decl({ type: 'oss', region: 'cn-shanghai', bucket: 'tandem-results', endpoint: federatedOss.url, pathStyle: true }), { oss: { identity, ...net } });
        try {
          await s.put(resultKey(`ali-${++round}`), Buffer.from('x'));
        } finally {
          await s.close();
        }
      };
      proxy.reset();
      await put({ proxyEnv: environment(proxy.url()) });
      expect(sts.calls.map((c) => c.status)).toEqual([200]);
      expect(proxy.count(hostOf(sts.url))).toBeGreaterThan(0);
      expect(proxy.count(hostOf(federatedOss.url))).toBeGreaterThan(0);
      proxy.reset();
      await put({ proxy: proxy.url() });
      expect(proxy.count(hostOf(sts.url))).toBeGreaterThan(0);
      proxy.reset();
      await put({ proxyEnv: environment(proxy.url(), hostOf(sts.url)) });
      expect(proxy.count(hostOf(sts.url))).toBe(0);
      expect(proxy.count(hostOf(federatedOss.url))).toBeGreaterThan(0);
      proxy.reset();
      await put({ proxy: false, proxyEnv: environment(proxy.url()) });
      expect(proxy.count()).toBe(0);
      expect(sts.calls.length).toBe(4);
      forbidding.reset();
      await expect(put({ proxy: forbidding.url() })).rejects.toMatchObject({ code: 'STORE_CONFIG', details: { proxyStatus: 403 } });
      expect(forbidding.refused).toContain(`403 ${hostOf(sts.url)}`);
      expect(sts.calls.length).toBe(4);
    } finally {
      restore();
      await federatedOss.stop();
      await sts.stop();
    }
  });
});

describe('GCS object requests and the process\'s own HTTPS_PROXY', () => {
  it('go direct with `proxy: false` (or a NO_PROXY only Tandem reads), though teeny-request would take the process\'s proxy', async () => {
    const restore = isolateEnv(['HTTPS_PROXY', 'HTTP_PROXY', 'NO_PROXY']);
    // What teeny-request reads for itself: every request through the forbidding proxy.
    process.env['HTTPS_PROXY'] = process.env['HTTP_PROXY'] = forbidding.url();
    try {
      forbidding.reset();
      proxy.reset();
      await subjects['gcs']!.call({ proxy: false });
      // A CIDR entry: teeny-request's own NO_PROXY rules know none.
      await subjects['gcs']!.call({ proxyEnv: environment(forbidding.url(), '127.0.0.0/8') });
      expect(forbidding.refused).toEqual([]);
      expect(forbidding.count()).toBe(0);
      // A route that names a proxy still takes it.
      await subjects['gcs']!.call({ proxy: proxy.url() });
      expect(proxy.count(hostOf(gcs.url))).toBeGreaterThan(0);
      expect(forbidding.refused).toEqual([]);
    } finally {
      restore();
    }
  });
});

describe('NO_PROXY matching', () => {
  const m = (list: string, host: string, port = 443): boolean => noProxyMatcher(list)(host, port);

  it('matches names and their subdomains, never a name that merely ends alike', () => {
    for (const entry of ['example.com', '.example.com', '*.example.com', 'EXAMPLE.com']) {
      expect(m(entry, 'example.com'), entry).toBe(true);
      expect(m(entry, 'api.Example.com.'), entry).toBe(true);
      expect(m(entry, 'badexample.com'), entry).toBe(false);
    }
  });

  it('matches ports, addresses in any spelling, CIDR blocks and *', () => {
    expect(m('example.com:8443', 'example.com', 8443)).toBe(true);
    expect(m('example.com:8443', 'example.com', 443)).toBe(false);
    expect(m('10.0.0.0/8', '10.1.2.3')).toBe(true);
    expect(m('10.0.0.0/8', '11.1.2.3')).toBe(false);
    expect(m('::1', '[0:0::1]')).toBe(true);
    expect(m('[fd00::1]:443', 'fd00::1', 443)).toBe(true);
    expect(m('fd00::/8', 'fd12::3')).toBe(true);
    expect(m('localhost', '127.0.0.1')).toBe(false);
    expect(m('a.com, b.com c.com', 'c.com')).toBe(true);
    expect(m('*', 'anything.at.all')).toBe(true);
    expect(m('', 'example.com')).toBe(false);
  });

  it('picks the proxy per scheme; the library reads no environment of its own', () => {
    const route = new ProxyRoute(undefined, 'endpoint "x"', proxyEnvironment({ https_proxy: 'http://tls-proxy:3128', HTTP_PROXY: 'plain-proxy:8080', NO_PROXY: '.internal' }));
    expect(route.proxyFor('https://api.example.com/x')?.host).toBe('tls-proxy:3128');
    expect(route.proxyFor('http://api.example.com/x')?.host).toBe('plain-proxy:8080');
    expect(route.proxyFor('https://svc.internal/x')).toBeUndefined();
    const restore = isolateEnv(['HTTPS_PROXY']);
    process.env['HTTPS_PROXY'] = 'http://leaked:1';
    try {
      expect(new ProxyRoute(undefined, 'endpoint "x"').active).toBe(false);
    } finally {
      restore();
    }
  });

  it('refuses a proxy setting that is not a proxy URL', () => {
    expect(() => new ProxyRoute('socks5://p:1080', 'endpoint "x"')).toThrow(expect.objectContaining({ code: 'PROVIDER_CONFIG' }));
    expect(() => new ProxyRoute(undefined, 'endpoint "x"', { https: 'http://p:1/path' })).toThrow(/HTTPS_PROXY/);
  });
});

describe('edge.yaml', () => {
  it('takes `proxy` on endpoints and stores, and the loader hands the environment to both', async () => {
    const file = join(dir, 'edge.yaml');
    await writeFile(file, JSON.stringify({
      models: [{ name: 'm', path: 'm.onnx' }],
      http: { port: 0 },
      endpoints: [
        { name: 'a', kind: 'oip', region: 'local', url: 'http://127.0.0.1:1', proxy: 'http://proxy.corp:3128' },
        { name: 'b', kind: 'oip', region: 'local', url: 'http://127.0.0.1:2', proxy: false },
      ],
      stores: { s3: { proxy: 'none' } },
    }));
    const { config } = await loadEdgeConfig(file, { HTTPS_PROXY: 'http://env-proxy:3128', NO_PROXY: '.internal' });
    const env = { https: 'http://env-proxy:3128', noProxy: '.internal' };
    expect(config.endpoints.map((e) => [e.proxy, (e as EndpointConfig).proxyEnv])).toEqual([['http://proxy.corp:3128', env], [false, env]]);
    expect(config.stores['s3']).toEqual({ proxy: 'none', proxyEnv: env });
    expect(config.stores['gcs']).toEqual({ proxyEnv: env });
    // The key ring's KMS clients (`stores.kms`) get it too.
    expect(config.stores['kms']).toEqual({ proxyEnv: env });
    const none = await loadEdgeConfig(file, {});
    expect(none.config.endpoints.some((e) => (e as EndpointConfig).proxyEnv !== undefined)).toBe(false);
    await writeFile(file, JSON.stringify({ models: [{ name: 'm', path: 'm.onnx' }], http: { port: 0 }, endpoints: [{ name: 'a', kind: 'oip', region: 'local', url: 'http://h:1', proxy: 'ftp://p' }], stores: { gcs: { proxy: 'http://p/x' } } }));
    const refused = await loadEdgeConfig(file, {}).catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: 'EDGE_CONFIG_INVALID' });
    expect((refused as { issues: { path: string }[] }).issues.map((i) => i.path)).toEqual(['endpoints[0].proxy', 'stores.gcs.proxy']);
  });
});
