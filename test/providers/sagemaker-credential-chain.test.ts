// The SageMaker client takes its credentials from the AWS SDK's default chain, never from
// Tandem's config: here the chain is driven the way real deployments drive it (a web identity
// token file as on EKS/IRSA, and a profile that assumes a role from a source profile), against
// a loopback STS, and the temporary credentials it returns sign the InvokeEndpoint calls that
// `tandem cloud serve` verifies, session token included.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { CloudService } from '../../cloud/server.js';
import { createProviderClient, ProviderError, type EndpointConfig } from '../../src/providers/index.js';
import { isolateEnv } from '../helpers/env.js';
import { CLS, CREDS, expectSameOutputs, localRun, modelsDir, randomInput, startService } from '../helpers/cloud.js';
import { closedPort } from '../helpers/net.js';
import { StsFake } from '../fakes/sts.js';

const ROLE = 'arn:aws:iam::123456789012:role/tandem-edge';
const ISSUED = { accessKeyId: 'ASIATANDEMTEMPORARY', secretAccessKey: 'temporary-secret-from-sts', sessionToken: 'FwoGZXIvYXdzEtandem-session-token' };
const SOURCE = { accessKeyId: 'AKIDTANDEMSOURCE', secretAccessKey: 'source-profile-secret' };
const WEB_TOKEN = 'eyJhbGciOiJSUzI1NiJ9.tandem-edge-service-account.signature';

// Everything the chain reads, so that neither the machine's own AWS setup nor another test's
// leaks in; restored after each test.
const CHAIN_ENV = ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE', 'AWS_DEFAULT_PROFILE', 'AWS_CONFIG_FILE',
  'AWS_SHARED_CREDENTIALS_FILE', 'AWS_WEB_IDENTITY_TOKEN_FILE', 'AWS_ROLE_ARN', 'AWS_ROLE_SESSION_NAME', 'AWS_ENDPOINT_URL', 'AWS_ENDPOINT_URL_STS',
  'AWS_EC2_METADATA_DISABLED', 'AWS_REGION', 'AWS_DEFAULT_REGION', 'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI', 'AWS_CONTAINER_CREDENTIALS_FULL_URI', 'AWS_CONTAINER_AUTHORIZATION_TOKEN', 'AWS_SDK_LOAD_CONFIG'];

let svc: CloudService;
let sts: StsFake;
let cleanupModels: () => void;
let dir: string;
let restoreEnv: () => void;

beforeAll(async () => {
  const m = modelsDir();
  cleanupModels = m.cleanup;
  // The service accepts exactly the temporary credentials STS issues.
  svc = await startService(m.dir, { credentials: { ...CREDS, aws: ISSUED } });
  sts = await new StsFake({ roleArn: ROLE, webIdentityToken: WEB_TOKEN, sourceCredentials: SOURCE, issued: ISSUED }).start();
});
afterAll(async () => {
  await svc.drain();
  await sts.stop();
  cleanupModels();
});

beforeEach(() => {
  restoreEnv = isolateEnv(CHAIN_ENV);
  dir = mkdtempSync(join(tmpdir(), 'tandem-aws-'));
  process.env['AWS_CONFIG_FILE'] = join(dir, 'config');
  process.env['AWS_SHARED_CREDENTIALS_FILE'] = join(dir, 'credentials');
  process.env['AWS_ENDPOINT_URL_STS'] = sts.url;
  // Locally, nothing may try the instance metadata service.
  process.env['AWS_EC2_METADATA_DISABLED'] = 'true';
  sts.calls.length = 0;
});
afterEach(() => {
  restoreEnv();
  rmSync(dir, { recursive: true, force: true });
});

const endpoint = (): EndpointConfig => ({ name: 'sm', kind: 'sagemaker', region: 'eu-central-1', url: svc.url, target: 'tandem-ep' });

describe('SageMaker credentials from the SDK default chain', () => {
  it('web identity (AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN): one STS exchange, then signed calls the service accepts', async () => {
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, WEB_TOKEN);
    process.env['AWS_WEB_IDENTITY_TOKEN_FILE'] = tokenFile;
    process.env['AWS_ROLE_ARN'] = ROLE;
    process.env['AWS_ROLE_SESSION_NAME'] = 'edge-gateway-7';
    const client = createProviderClient(endpoint());
    try {
      const input = randomInput([1, 3, 48, 96], 11);
      const want = await localRun(CLS, input);
      for (let i = 0; i < 2; i++) {
        const res = await client.infer({ model: 'cls', inputs: input }, { deadline: Date.now() + 30_000 });
        expectSameOutputs(res.outputs, want);
      }
      // The SDK keeps the temporary credentials until they near expiry.
      expect(sts.calls).toEqual([{ action: 'AssumeRoleWithWebIdentity', roleArn: ROLE, roleSessionName: 'edge-gateway-7', status: 200 }]);
    } finally {
      await client.close();
    }
  });

  it('role assumption from a profile (role_arn + source_profile): AssumeRole signed with the source keys', async () => {
    writeFileSync(join(dir, 'config'), `[profile edge]\nrole_arn = ${ROLE}\nsource_profile = base\nrole_session_name = edge-from-profile\nregion = eu-central-1\n`);
    writeFileSync(join(dir, 'credentials'), `[base]\naws_access_key_id = ${SOURCE.accessKeyId}\naws_secret_access_key = ${SOURCE.secretAccessKey}\n`);
    process.env['AWS_PROFILE'] = 'edge';
    const client = createProviderClient(endpoint());
    try {
      const input = randomInput([1, 3, 8, 10], 5);
      const res = await client.infer({ model: 'cls', inputs: input }, { deadline: Date.now() + 30_000 });
      expectSameOutputs(res.outputs, await localRun(CLS, input));
      // 200 only if the fake STS verified the SigV4 of the source profile's keys.
      expect(sts.calls).toEqual([{ action: 'AssumeRole', roleArn: ROLE, roleSessionName: 'edge-from-profile', status: 200 }]);
    } finally {
      await client.close();
    }
  });

  it('AWS IoT Greengrass token exchange (AWS_CONTAINER_CREDENTIALS_FULL_URI + AWS_CONTAINER_AUTHORIZATION_TOKEN)', async () => {
    // What a Greengrass core gives its components: a loopback credential endpoint and a token.
    const seen: Array<string | undefined> = [];
    const tes = createServer((req, res) => {
      seen.push(req.headers['authorization']);
      if (req.url !== '/2016-11-01/credentialprovider/' || req.headers['authorization'] !== 'greengrass-component-token') {
        res.writeHead(403, { 'content-type': 'application/json' }).end(JSON.stringify({ message: 'forbidden' }));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({
        AccessKeyId: ISSUED.accessKeyId, SecretAccessKey: ISSUED.secretAccessKey, Token: ISSUED.sessionToken, Expiration: new Date(Date.now() + 3600_000).toISOString(),
      }));
    });
    await new Promise<void>((resolve) => tes.listen(0, '127.0.0.1', resolve));
    process.env['AWS_CONTAINER_CREDENTIALS_FULL_URI'] = `http://127.0.0.1:${(tes.address() as AddressInfo).port}/2016-11-01/credentialprovider/`;
    process.env['AWS_CONTAINER_AUTHORIZATION_TOKEN'] = 'greengrass-component-token';
    const client = createProviderClient(endpoint());
    try {
      const input = randomInput([1, 3, 8, 10], 9);
      const res = await client.infer({ model: 'cls', inputs: input }, { deadline: Date.now() + 30_000 });
      expectSameOutputs(res.outputs, await localRun(CLS, input));
      expect(seen).toEqual(['greengrass-component-token']);
      expect(sts.calls).toEqual([]);
    } finally {
      await client.close();
      await new Promise<void>((resolve) => tes.close(() => resolve()));
    }
  });

  it('a rejected web identity token is a final auth error, and nothing reaches the endpoint', async () => {
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, 'expired-or-forged-token');
    process.env['AWS_WEB_IDENTITY_TOKEN_FILE'] = tokenFile;
    process.env['AWS_ROLE_ARN'] = ROLE;
    const requestsBefore = await invocations();
    const client = createProviderClient(endpoint());
    try {
      const error = await client.infer({ model: 'cls', inputs: randomInput([1, 3, 8, 10], 5) }, { deadline: Date.now() + 30_000 }).then(() => undefined, (e: unknown) => e);
      expect(error).toBeInstanceOf(ProviderError);
      expect(error).toMatchObject({ code: 'PROVIDER_AUTH', retryable: false });
      expect(String((error as Error).message)).toMatch(/credential chain failed: the credential service answered 400 InvalidIdentityToken/);
      expect(sts.calls.map((c) => c.status)).toEqual([400]);
      expect(await invocations()).toBe(requestsBefore);
    } finally {
      await client.close();
    }
  });

  it('no credentials anywhere is a final auth error; an unreachable STS is a retryable network error', async () => {
    const none = createProviderClient(endpoint());
    try {
      await expect(none.infer({ model: 'cls', inputs: randomInput([1, 3, 8, 10], 5) }, { deadline: Date.now() + 30_000 }))
        .rejects.toMatchObject({ code: 'PROVIDER_AUTH', retryable: false, message: expect.stringMatching(/credential chain failed: Could not load credentials/) as unknown });
    } finally {
      await none.close();
    }
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, WEB_TOKEN);
    process.env['AWS_WEB_IDENTITY_TOKEN_FILE'] = tokenFile;
    process.env['AWS_ROLE_ARN'] = ROLE;
    process.env['AWS_ENDPOINT_URL_STS'] = `http://127.0.0.1:${await closedPort()}`;
    const unreachable = createProviderClient(endpoint());
    try {
      await expect(unreachable.infer({ model: 'cls', inputs: randomInput([1, 3, 8, 10], 5) }, { deadline: Date.now() + 30_000 }))
        .rejects.toMatchObject({ code: 'PROVIDER_NETWORK', retryable: true });
    } finally {
      await unreachable.close();
    }
    expect(sts.calls).toEqual([]);
  });

  it('an STS that never answers is bounded by the call\'s deadline (PROVIDER_TIMEOUT, retryable)', async () => {
    const silent = createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, WEB_TOKEN);
    process.env['AWS_WEB_IDENTITY_TOKEN_FILE'] = tokenFile;
    process.env['AWS_ROLE_ARN'] = ROLE;
    process.env['AWS_ENDPOINT_URL_STS'] = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    const client = createProviderClient(endpoint());
    const started = Date.now();
    try {
      await expect(client.infer({ model: 'cls', inputs: randomInput([1, 3, 8, 10], 5) }, { deadline: Date.now() + 300 }))
        .rejects.toMatchObject({ code: 'PROVIDER_TIMEOUT', retryable: true });
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      await client.close();
      silent.closeAllConnections();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  it('the service refuses temporary keys without their session token, or with another one', async () => {
    const wrong = [
      { accessKeyId: ISSUED.accessKeyId, secretAccessKey: ISSUED.secretAccessKey },
      { ...ISSUED, sessionToken: 'another-session-token' },
    ];
    for (const credentials of wrong) {
      const client = createProviderClient(endpoint(), { sagemaker: { credentials } });
      try {
        await expect(client.infer({ model: 'cls', inputs: randomInput([1, 3, 8, 10], 5) }, { deadline: Date.now() + 30_000 }))
          .rejects.toMatchObject({ code: 'PROVIDER_AUTH', status: 403 });
      } finally {
        await client.close();
      }
    }
    expect(sts.calls).toEqual([]);
  });
});

/** SageMaker-route requests the service has counted so far (any status). */
async function invocations(): Promise<number> {
  const text = await (await fetch(`${svc.url}/metrics`)).text();
  let n = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('tandem_cloud_requests_total{') && line.includes('route="sagemaker-front"')) n += Number(line.split(' ').at(-1));
  }
  return n;
}
