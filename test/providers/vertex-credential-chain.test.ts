// The Vertex AI client without a static token takes Application Default Credentials: here a
// workload identity federation config (`external_account`, as an edge device outside Google
// Cloud holds one) exchanges a subject token at a loopback Google STS, and the access token it
// returns is the bearer token `tandem cloud serve`'s Vertex front accepts. A loopback metadata
// server counts any request that would have gone to GCE's metadata service: there must be none.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { CloudService } from '../../cloud/server.js';
import { createProviderClient, ProviderError, type EndpointConfig } from '../../src/providers/index.js';
import { isolateEnv } from '../helpers/env.js';
import { CLS, CREDS, expectSameOutputs, localRun, modelsDir, randomInput, startService } from '../helpers/cloud.js';

const AUDIENCE = '//iam.googleapis.com/projects/123456789/locations/global/workloadIdentityPools/edge-pool/providers/gateways';
const SUBJECT_TOKEN = 'eyJhbGciOiJSUzI1NiJ9.edge-gateway-oidc.signature';
const ACCESS_TOKEN = 'ya29.tandem-federated-access-token';

const ADC_ENV = ['GOOGLE_APPLICATION_CREDENTIALS', 'GOOGLE_CLOUD_PROJECT', 'GCLOUD_PROJECT', 'GCE_METADATA_HOST', 'GCE_METADATA_IP', 'CLOUDSDK_CONFIG', 'GOOGLE_CLOUD_QUOTA_PROJECT'];

interface TokenExchange { grantType: string | null; audience: string | null; subjectTokenType: string | null; status: number }

let svc: CloudService;
let cleanupModels: () => void;
let sts: Server;
let metadata: Server;
let metadataHits: string[];
let exchanges: TokenExchange[];
let dir: string;
let restoreEnv: () => void;

const listen = async (server: Server): Promise<number> => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
};
let stsPort = 0;
let metadataPort = 0;

beforeAll(async () => {
  const m = modelsDir();
  cleanupModels = m.cleanup;
  svc = await startService(m.dir, { credentials: { ...CREDS, vertexToken: ACCESS_TOKEN } });
  // Google's STS token exchange (RFC 8693), as `external_account` credentials call it.
  sts = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
      const ok = req.url === '/v1/token' && form.get('subject_token') === SUBJECT_TOKEN && form.get('audience') === AUDIENCE;
      exchanges.push({ grantType: form.get('grant_type'), audience: form.get('audience'), subjectTokenType: form.get('subject_token_type'), status: ok ? 200 : 400 });
      if (!ok) {
        res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'invalid_grant', error_description: 'The subject token is invalid or expired.' }));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({
        access_token: ACCESS_TOKEN, issued_token_type: 'urn:ietf:params:oauth:token-type:access_token', token_type: 'Bearer', expires_in: 3600,
      }));
    });
  });
  stsPort = await listen(sts);
  metadata = createServer((req, res) => {
    metadataHits.push(req.url ?? '');
    res.writeHead(404).end();
  });
  metadataPort = await listen(metadata);
});
afterAll(async () => {
  await svc.drain();
  await new Promise<void>((resolve) => sts.close(() => resolve()));
  await new Promise<void>((resolve) => metadata.close(() => resolve()));
  cleanupModels();
});

beforeEach(() => {
  restoreEnv = isolateEnv(ADC_ENV);
  dir = mkdtempSync(join(tmpdir(), 'tandem-adc-'));
  // No gcloud user credentials from the machine, and every metadata lookup lands on the trap.
  process.env['CLOUDSDK_CONFIG'] = join(dir, 'gcloud');
  process.env['GCE_METADATA_HOST'] = `127.0.0.1:${metadataPort}`;
  process.env['GCE_METADATA_IP'] = `127.0.0.1:${metadataPort}`;
  metadataHits = [];
  exchanges = [];
});
afterEach(() => {
  restoreEnv();
  rmSync(dir, { recursive: true, force: true });
});

function federationConfig(subjectToken: string): void {
  const tokenFile = join(dir, 'subject-token');
  writeFileSync(tokenFile, subjectToken);
  const config = join(dir, 'wif.json');
  writeFileSync(config, JSON.stringify({
    type: 'external_account',
    audience: AUDIENCE,
    subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
    token_url: `http://127.0.0.1:${stsPort}/v1/token`,
    credential_source: { file: tokenFile },
  }));
  process.env['GOOGLE_APPLICATION_CREDENTIALS'] = config;
}

const endpoint = (wire: 'binary' | 'json'): EndpointConfig => ({ name: 'vx', kind: 'vertex', region: 'europe-west4', url: svc.url, project: 'proj', target: 'ep1', wire });

describe('Vertex AI credentials from Application Default Credentials', () => {
  for (const wire of ['binary', 'json'] as const) {
    it(`workload identity federation (external_account): ${wire === 'binary' ? 'rawPredict' : 'predict'} with the exchanged token, no metadata server`, async () => {
      federationConfig(SUBJECT_TOKEN);
      const client = createProviderClient(endpoint(wire));
      try {
        const input = randomInput([1, 3, 8, 10], 13);
        const want = await localRun(CLS, input);
        for (let i = 0; i < 2; i++) {
          const res = await client.infer({ model: 'cls', inputs: input }, { deadline: Date.now() + 30_000 });
          expectSameOutputs(res.outputs, want, wire === 'json' ? 1e-4 : 1e-5);
        }
        // One exchange: the auth library keeps the access token until it nears expiry.
        expect(exchanges).toEqual([{ grantType: 'urn:ietf:params:oauth:grant-type:token-exchange', audience: AUDIENCE, subjectTokenType: 'urn:ietf:params:oauth:token-type:jwt', status: 200 }]);
        expect(metadataHits).toEqual([]);
      } finally {
        await client.close();
      }
    });
  }

  it('a refused subject token is a final auth error, and nothing reaches the endpoint', async () => {
    federationConfig('forged-subject-token');
    const client = createProviderClient(endpoint('binary'));
    try {
      const error = await client.infer({ model: 'cls', inputs: randomInput([1, 3, 8, 10], 5) }, { deadline: Date.now() + 30_000 }).then(() => undefined, (e: unknown) => e);
      expect(error).toBeInstanceOf(ProviderError);
      expect(error).toMatchObject({ code: 'PROVIDER_AUTH', retryable: false });
      expect((error as Error).message).toMatch(/credential chain failed: the credential service answered 400 invalid_grant/);
      expect(exchanges.map((e) => e.status)).toEqual([400]);
      expect(metadataHits).toEqual([]);
    } finally {
      await client.close();
    }
  });
});
