/**
 * `EndpointConfig.caFile`, per endpoint, for every client: `tandem cloud serve` with a
 * certificate for 127.0.0.1 that a private CA made here signed, on HTTPS and on its Vertex AI
 * gRPC front. With the CA as `caFile` each kind's call goes through; without it, or with
 * another CA's, it fails as a final PROVIDER_TLS; an unreadable or non-PEM `caFile` fails the
 * call with PROVIDER_CONFIG. Whatever process-wide roots this machine sets
 * (NODE_EXTRA_CA_CERTS, GRPC_DEFAULT_SSL_ROOTS_FILE_PATH) cannot hold a CA made at test time,
 * so a success can only come from `caFile`.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent as HttpsAgent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CloudService } from '../../cloud/server.js';
import { createProviderClient, type EndpointConfig, type ProviderClient } from '../../src/providers/index.js';
import { readCaFile } from '../../src/providers/ca.js';
import { trustingAdapter } from '../../src/providers/vertex.js';
import { CLS, CREDS, expectSameOutputs, localRun, modelsDir, randomInput, startService } from '../helpers/cloud.js';
import { failure } from '../helpers/errors.js';

const run = promisify(execFile);
const certDir = mkdtempSync(join(tmpdir(), 'tandem-provider-ca-'));
async function openssl(args: string[]): Promise<void> {
  await run('openssl', args, { cwd: certDir, timeout: 30_000 });
}
// The CA that signs the service's certificate, and another that signs nothing here.
await openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=tandem-private-ca']);
await openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'other.key', '-out', 'other.crt', '-days', '1', '-subj', '/CN=tandem-other-ca']);
await openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1']);
writeFileSync(join(certDir, 'san.cnf'), 'subjectAltName=IP:127.0.0.1\n');
await openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '1', '-extfile', 'san.cnf']);
const CA_FILE = join(certDir, 'ca.crt');
const OTHER_CA_FILE = join(certDir, 'other.crt');
// A bundle as distributions ship them: comments around the certificates, the right CA second.
const BUNDLE_FILE = join(certDir, 'bundle.pem');
writeFileSync(BUNDLE_FILE, `# other\n${readFileSync(OTHER_CA_FILE, 'utf8')}\n# private\n${readFileSync(CA_FILE, 'utf8')}`);
const NOT_PEM_FILE = join(certDir, 'not-pem.crt');
writeFileSync(NOT_PEM_FILE, 'this is not a certificate\n');
const BROKEN_PEM_FILE = join(certDir, 'broken.crt');
writeFileSync(BROKEN_PEM_FILE, '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n');
const MISSING_FILE = join(certDir, 'missing.crt');

let svc: CloudService;
let cleanupModels: () => void;

beforeAll(async () => {
  const m = modelsDir();
  cleanupModels = m.cleanup;
  svc = await startService(m.dir, { tls: { key: readFileSync(join(certDir, 'server.key')), cert: readFileSync(join(certDir, 'server.crt')) }, grpcPort: 0 });
  expect(svc.url.startsWith('https://')).toBe(true);
  expect(svc.grpcUrl?.startsWith('https://')).toBe(true);
});
afterAll(async () => {
  await svc.drain();
  cleanupModels();
  rmSync(certDir, { recursive: true, force: true });
});

const KINDS = ['sagemaker', 'vertex-rest', 'vertex-grpc', 'pai-eas', 'oip'] as const;
type Kind = (typeof KINDS)[number];

function endpoint(kind: Kind, extra: Partial<EndpointConfig> = {}): EndpointConfig {
  switch (kind) {
    case 'sagemaker':
      return { name: 'sm', kind: 'sagemaker', region: 'eu-central-1', url: svc.url, target: 'tandem-ep', ...extra };
    case 'vertex-rest':
      return { name: 'vx-rest', kind: 'vertex', region: 'europe-west4', url: svc.url, transport: 'rest', project: 'proj', target: 'ep1', token: CREDS.vertexToken, ...extra };
    case 'vertex-grpc':
      return { name: 'vx-grpc', kind: 'vertex', region: 'europe-west4', url: svc.grpcUrl ?? '', transport: 'grpc', project: 'proj', target: 'ep1', token: CREDS.vertexToken, ...extra };
    case 'pai-eas':
      return { name: 'eas', kind: 'pai-eas', region: 'cn-shanghai', url: svc.url, target: 'svc', token: CREDS.easToken, ...extra };
    case 'oip':
      return { name: 'oip', kind: 'oip', region: 'local', url: svc.url, ...extra };
  }
}

async function withClient<T>(cfg: EndpointConfig, f: (c: ProviderClient) => Promise<T>): Promise<T> {
  const c = createProviderClient(cfg, { sagemaker: { credentials: CREDS.aws } });
  try {
    return await f(c);
  } finally {
    await c.close();
  }
}

const input = randomInput([1, 3, 8, 10], 3);
const call = (c: ProviderClient): ReturnType<ProviderClient['infer']> => c.infer({ model: 'cls', inputs: input }, { deadline: Date.now() + 30_000 });

describe.each(KINDS)('%s with caFile', (kind) => {
  it('reaches the service when caFile holds its CA, and matches a local run', async () => {
    const want = await localRun(CLS, input);
    await withClient(endpoint(kind, { caFile: CA_FILE }), async (c) => {
      expectSameOutputs((await call(c)).outputs, want);
      // Again on the same client: the file is read once, the connection is kept.
      expectSameOutputs((await call(c)).outputs, want);
    });
    // A bundle of several CAs, with text between them, is taken whole.
    await withClient(endpoint(kind, { caFile: BUNDLE_FILE }), async (c) => expectSameOutputs((await call(c)).outputs, want));
  });

  it('refuses the certificate without caFile, or with another CA as caFile: a final PROVIDER_TLS', async () => {
    for (const caFile of [undefined, OTHER_CA_FILE]) {
      const err = await withClient(endpoint(kind, caFile ? { caFile } : {}), (c) => failure(call(c)));
      expect(err.code, `${String(caFile)}: ${err.message}`).toBe('PROVIDER_TLS');
      expect(err.retryable).toBe(false);
      expect(err.message).toMatch(/certificate/);
    }
  });

  it('an unreadable or non-PEM caFile: constructing succeeds, every call rejects with PROVIDER_CONFIG', async () => {
    for (const [caFile, why] of [[MISSING_FILE, /cannot be read.*ENOENT/], [NOT_PEM_FILE, /no PEM certificate/], [BROKEN_PEM_FILE, /does not parse/]] as const) {
      const cfg = endpoint(kind, { caFile });
      let c: ProviderClient | undefined;
      expect(() => (c = createProviderClient(cfg, { sagemaker: { credentials: CREDS.aws } }))).not.toThrow();
      try {
        for (let i = 0; i < 2; i++) {
          const err = await failure((c as ProviderClient).infer({ model: 'cls', inputs: input }));
          expect(err.code, err.message).toBe('PROVIDER_CONFIG');
          expect(err.message).toContain(caFile);
          expect(err.message).toMatch(why);
          expect(err.details).toMatchObject({ endpoint: cfg.name, caFile });
        }
      } finally {
        await c?.close();
      }
    }
  });
});

describe('caFile is per endpoint', () => {
  it.each(KINDS)('%s: an endpoint with caFile and one without, side by side, each keep their own trust', async (kind) => {
    const want = await localRun(CLS, input);
    await withClient(endpoint(kind, { caFile: CA_FILE }), (trusting) =>
      withClient(endpoint(kind), async (plain) => {
        expectSameOutputs((await call(trusting)).outputs, want);
        expect((await failure(call(plain))).code).toBe('PROVIDER_TLS');
        expectSameOutputs((await call(trusting)).outputs, want);
      }),
    );
  });

  it('vertex gRPC with caFile still sends the bearer token: a wrong one is PROVIDER_AUTH', async () => {
    const err = await withClient(endpoint('vertex-grpc', { caFile: CA_FILE, token: 'not-the-token' }), (c) => failure(call(c)));
    expect(err.code, err.message).toBe('PROVIDER_AUTH');
  });

  it('the OIP link probe goes through the endpoint agent too', async () => {
    await withClient(endpoint('oip', { caFile: CA_FILE }), async (c) => {
      expect(await c.probeLink?.(4096)).toBeGreaterThan(0);
    });
    const err = await withClient(endpoint('oip'), (c) => failure(c.probeLink?.(4096) ?? Promise.resolve()));
    expect(err.code).toBe('PROVIDER_TLS');
  });

  it('the Vertex REST adapter puts the agent on requests to the endpoint only (not on ADC token requests)', async () => {
    const agent = new HttpsAgent();
    const gaxAgent = new HttpsAgent();
    const seen: unknown[] = [];
    const adapter = trustingAdapter(async (options) => {
      seen.push(options.agent);
      return Promise.resolve({} as never);
    }, 'https://127.0.0.1:8443', agent);
    const next = (): never => {
      throw new Error('unused');
    };
    await adapter({ url: new URL('https://127.0.0.1:8443/v1/projects/p:rawPredict'), agent: gaxAgent, headers: new Headers() } as Parameters<typeof adapter>[0], next);
    await adapter({ url: new URL('https://oauth2.googleapis.com/token'), agent: gaxAgent, headers: new Headers() } as Parameters<typeof adapter>[0], next);
    expect(seen).toEqual([agent, gaxAgent]);
    agent.destroy();
    gaxAgent.destroy();
  });

  it('readCaFile keeps only the certificates of a bundle', async () => {
    const pem = (await readCaFile('e', BUNDLE_FILE)).toString('utf8');
    expect(pem.match(/-----BEGIN CERTIFICATE-----/g)).toHaveLength(2);
    expect(pem).not.toContain('#');
  });
});
