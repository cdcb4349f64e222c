/**
 * Vertex AI's production transport, gRPC, end to end: the real `PredictionServiceClient`
 * (through Tandem's `VertexClient`: wire 'binary' → RawPredict, wire 'json' → Predict) against
 * the cloud service's gRPC front over TLS, with the channel gax builds itself, as it does
 * against Google: TLS with grpc-js's default roots, and call credentials from the auth client.
 * The test CA becomes those default roots through GRPC_DEFAULT_SSL_ROOTS_FILE_PATH, which
 * grpc-js reads once, when it is first loaded: it is set below before anything loads it (each
 * vitest file runs in a process of its own).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server as HttpServer } from 'node:http';
import { connect as http2Connect } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import { createRequire } from 'node:module';
import { connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, sep } from 'node:path';
import { promisify } from 'node:util';
import * as ort from 'onnxruntime-node';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { CloudService, CloudServiceOptions } from '../../cloud/server.js';
import { generateReferenceModel } from '../../models/generate.js';
import { listCuts, parseModel, splitModel } from '../../src/graph/index.js';
import { createProviderClient, ProviderError, type EndpointConfig, type ProviderClient } from '../../src/providers/index.js';
import { retryInfoOf, vertexAnswerError } from '../../src/providers/vertex.js';
import { MAX_RETRY_AFTER_MS } from '../../src/providers/errors.js';
import type { TensorMap } from '../../src/tensor/index.js';
import { CLS, CREDS, DET, expectSameOutputs, localRun, randomInput, startService } from '../helpers/cloud.js';
import { ROOT } from '../helpers/cli.js';
import { isolateEnv } from '../helpers/env.js';
import { failure } from '../helpers/errors.js';

const run = promisify(execFile);
const requireCjs = createRequire(import.meta.url);

// The certificates: a CA, and the service's certificate for 127.0.0.1 signed by it.
const certDir = mkdtempSync(join(tmpdir(), 'tandem-grpc-tls-'));
async function openssl(args: string[]): Promise<void> {
  await run('openssl', args, { cwd: certDir, timeout: 30_000 });
}
await openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=tandem-test-ca']);
await openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1']);
writeFileSync(join(certDir, 'san.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
await openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '1', '-extfile', 'san.cnf']);
const CA = readFileSync(join(certDir, 'ca.crt'));
const TLS = { key: readFileSync(join(certDir, 'server.key')), cert: readFileSync(join(certDir, 'server.crt')) };
if (Object.keys(requireCjs.cache).some((k) => k.includes(`${sep}@grpc${sep}grpc-js${sep}`))) {
  throw new Error('@grpc/grpc-js was loaded before GRPC_DEFAULT_SSL_ROOTS_FILE_PATH was set: the test CA would not be its default root');
}
process.env['GRPC_DEFAULT_SSL_ROOTS_FILE_PATH'] = join(certDir, 'ca.crt');

/** The models: the two PP-OCR models, and a small reference MobileNetV2 to split. */
const modelDir = mkdtempSync(join(tmpdir(), 'tandem-grpc-models-'));
symlinkSync(CLS, join(modelDir, 'cls.onnx'));
symlinkSync(DET, join(modelDir, 'det.onnx'));
const MNV2 = join(modelDir, 'mnv2.onnx');
const mnv2Bytes = generateReferenceModel({ arch: 'mobilenetv2', width: 0.5, resolution: 96, classes: 10, seed: 3 });
writeFileSync(MNV2, mnv2Bytes);

afterAll(() => {
  rmSync(certDir, { recursive: true, force: true });
  rmSync(modelDir, { recursive: true, force: true });
});

const vertex = (url: string, target: string, extra: Partial<EndpointConfig> = {}): EndpointConfig => ({
  name: 'vx-grpc', kind: 'vertex', region: 'europe-west4', url, transport: 'grpc', project: 'proj', target, token: CREDS.vertexToken, ...extra,
});


async function withClient<T>(cfg: EndpointConfig, f: (c: ProviderClient) => Promise<T>, overrides: Parameters<typeof createProviderClient>[1] = {}): Promise<T> {
  const c = createProviderClient(cfg, overrides);
  try {
    return await f(c);
  } finally {
    await c.close();
  }
}

/** GET over HTTPS, trusting the test CA: status and body. */
function httpsGet(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    httpsRequest(url, { ca: CA }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject).end();
  });
}

/** Whether a TCP connection to the port is refused (nothing listens any more). */
function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ECONNREFUSED'));
  });
}

/** The mnv2 tail after a middle cut: its inputs (the head's outputs, run here) and the whole model's outputs. */
async function tailCase(seed: number): Promise<{ cut: string; inputs: TensorMap; whole: TensorMap }> {
  const model = await parseModel(mnv2Bytes);
  const cuts = listCuts(model);
  const cut = cuts[Math.floor(cuts.length / 2)];
  if (!cut) throw new Error('no cut');
  const inputName = cuts[0]?.tensors[0] ?? 'input';
  const x = randomInput([1, 3, 96, 96], seed)['x'];
  if (!x) throw new Error('input');
  const input: TensorMap = { [inputName]: x };
  const { head, manifest } = await splitModel(model, cut.id);
  const session = await ort.InferenceSession.create(head);
  const out = await session.run({ [inputName]: new ort.Tensor('float32', x.data as Float32Array, x.dims as number[]) });
  await session.release();
  const inputs: TensorMap = {};
  for (const name of manifest.tail.inputs) {
    const t = out[name];
    inputs[name] = t ? { dtype: 'float32', dims: [...t.dims], data: t.data as Float32Array } : (input[name] as NonNullable<TensorMap[string]>);
  }
  return { cut: cut.id, inputs, whole: await localRun(MNV2, input) };
}

describe('Vertex AI over gRPC against `tandem cloud serve --grpc-port` (TLS)', () => {
  let child: ChildProcess;
  let out = '';
  let exited: Promise<number | null>;
  let httpUrl: string;
  let grpcUrl: string;
  let grpcPort: number;

  beforeAll(async () => {
    child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'cli', 'entry.ts'), 'cloud', 'serve',
      '--port', '0', '--grpc-port', '0', '--host', '127.0.0.1', '--models', modelDir,
      '--tls-key', join(certDir, 'server.key'), '--tls-cert', join(certDir, 'server.crt'), '--log-level', 'info'], {
      cwd: ROOT, env: { ...process.env, TANDEM_VERTEX_TOKEN: CREDS.vertexToken }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    const started = Date.now();
    let m: RegExpExecArray | null;
    while (!(m = /tandem cloud service on (\S+) \(Vertex AI gRPC on (\S+)\)/.exec(out))) {
      if (child.exitCode !== null || Date.now() - started > 60_000) throw new Error(`the service did not start:\n${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    httpUrl = m[1] as string;
    grpcUrl = m[2] as string;
    grpcPort = Number(new URL(grpcUrl).port);
  });
  afterAll(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });

  it('starts both fronts over TLS, the gRPC one on its own port', () => {
    expect(httpUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(grpcUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(grpcUrl).not.toBe(httpUrl);
  });

  it('RawPredict (wire binary): a whole model at 1 KB, 55 KB and 4.9 MB gives a local onnxruntime run\'s outputs', async () => {
    await withClient(vertex(grpcUrl, 'cls'), async (c) => {
      for (const input of [randomInput([1, 3, 8, 10], 3), randomInput([1, 3, 48, 96], 7)]) {
        const res = await c.infer({ model: 'cls', inputs: input }, { deadline: Date.now() + 60_000 });
        expectSameOutputs(res.outputs, await localRun(CLS, input));
        expect(res.timing.remoteMs).toBeGreaterThan(0);
        expect(res.bytesSent).toBeGreaterThan(input['x']?.data.byteLength ?? 0);
      }
    });
    await withClient(vertex(grpcUrl, 'det'), async (c) => {
      const input = randomInput([1, 3, 640, 640], 11);
      const res = await c.infer({ model: 'det', inputs: input }, { deadline: Date.now() + 60_000 });
      // Over grpc-js's 4 MiB default: the limits are Vertex's 10 MB on both sides.
      expect(res.bytesSent).toBeGreaterThan(4.9e6);
      expectSameOutputs(res.outputs, await localRun(DET, input), 1e-4);
    });
  });

  it('Predict (wire json): a whole model at 1 KB, 55 KB and 0.8 MB (2.2 MB of protobuf Values) gives a local run\'s outputs', async () => {
    await withClient(vertex(grpcUrl, 'cls', { wire: 'json' }), async (c) => {
      for (const input of [randomInput([1, 3, 8, 10], 3), randomInput([1, 3, 48, 96], 7)]) {
        const res = await c.infer({ model: 'cls', inputs: input }, { deadline: Date.now() + 60_000 });
        expectSameOutputs(res.outputs, await localRun(CLS, input), 1e-5);
        expect(res.timing.remoteMs).toBeGreaterThan(0);
      }
    });
    await withClient(vertex(grpcUrl, 'det', { wire: 'json' }), async (c) => {
      const input = randomInput([1, 3, 256, 256], 5);
      const res = await c.infer({ model: 'det', inputs: input }, { deadline: Date.now() + 60_000 });
      expectSameOutputs(res.outputs, await localRun(DET, input), 1e-4);
    });
  });

  it('a tail after a middle cut, on both wires, gives the whole model\'s outputs', async () => {
    const { cut, inputs, whole } = await tailCase(21);
    for (const wire of ['binary', 'json'] as const) {
      await withClient(vertex(grpcUrl, 'mnv2', { wire }), async (c) => {
        const res = await c.infer({ model: 'mnv2', cut, inputs }, { deadline: Date.now() + 60_000 });
        expectSameOutputs(res.outputs, whole, 1e-4);
      });
    }
  });

  it('a wrong token is a final PROVIDER_AUTH (UNAUTHENTICATED) on both methods', async () => {
    for (const wire of ['binary', 'json'] as const) {
      const err = await withClient(vertex(grpcUrl, 'cls', { wire, token: 'not-the-token' }), (c) => failure(c.infer({ model: 'cls', inputs: randomInput([1, 3, 8, 10]) })));
      expect(err.code, err.message).toBe('PROVIDER_AUTH');
      expect(err.status).toBe(401);
      expect(err.retryable).toBe(false);
      expect(err.message).toMatch(/CLOUD_AUTH_INVALID/);
    }
  });

  it('a malformed body, an undecodable message and a malformed endpoint are INVALID_ARGUMENT with the service\'s code, PROVIDER_VALIDATION to the client', async () => {
    const { v1 } = await import('@google-cloud/aiplatform');
    const { googleAuthLibrary, grpc } = await import('google-gax');
    const auth = new googleAuthLibrary.OAuth2Client();
    auth.setCredentials({ access_token: CREDS.vertexToken, expiry_date: Date.now() + 3600_000 });
    const sdk = new v1.PredictionServiceClient({ apiEndpoint: '127.0.0.1', port: grpcPort, projectId: 'proj', authClient: auth });
    try {
      const bodyError = await sdk.rawPredict({ endpoint: 'projects/proj/locations/europe-west4/endpoints/cls', httpBody: { contentType: 'application/octet-stream', data: Buffer.from('not a tensor payload') } }).then(() => undefined, (e: unknown) => e);
      expect(bodyError).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, reason: 'CLOUD_UNSUPPORTED_BODY', domain: 'tandem.cloud' });
      const mapped = vertexAnswerError('vx-grpc', bodyError);
      expect(mapped?.code).toBe('PROVIDER_VALIDATION');
      expect(mapped?.status).toBe(400);
      expect(mapped?.message).toMatch(/CLOUD_UNSUPPORTED_BODY.*neither a Tandem tensor payload/);
      const endpointError = await sdk.predict({ endpoint: 'cls', instances: [{ numberValue: 1 }] }).then(() => undefined, (e: unknown) => e);
      expect(endpointError).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, reason: 'CLOUD_ENDPOINT_INVALID' });
      expect(String((endpointError as Error).message)).toMatch(/projects\/\{project\}\/locations\/\{location\}\/endpoints\/\{endpoint\}/);
    } finally {
      await sdk.close();
    }
    // Bytes that are no PredictRequest at all (an instance whose length runs past the end): grpc-js would answer INTERNAL.
    const raw = new grpc.Client(`127.0.0.1:${grpcPort}`, grpc.credentials.createSsl());
    try {
      const md = new grpc.Metadata();
      md.set('authorization', `Bearer ${CREDS.vertexToken}`);
      const status = await new Promise<{ code: number; details: string }>((resolve) => {
        raw.makeUnaryRequest('/google.cloud.aiplatform.v1.PredictionService/Predict', (b: Buffer) => b, (b: Buffer) => b, Buffer.from([0x12, 0x10, 0x01]), md, { deadline: Date.now() + 30_000 },
          (error) => resolve({ code: error?.code ?? 0, details: error?.details ?? '' }));
      });
      expect(status.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(status.details).toMatch(/^CLOUD_GRPC_MESSAGE: the PredictRequest could not be decoded/);
    } finally {
      raw.close();
    }
  });

  it('inputs the model refuses are a final PROVIDER_MODEL on both methods (ErrorInfo reason CLOUD_MODEL_ERROR)', async () => {
    // Passes the static shape check (dynamic width) and is refused by an operator.
    const empty = randomInput([1, 3, 48, 0]);
    for (const wire of ['binary', 'json'] as const) {
      const err = await withClient(vertex(grpcUrl, 'cls', { wire }), (c) => failure(c.infer({ model: 'cls', inputs: empty })));
      expect(err.code, `${wire}: ${err.message}`).toBe('PROVIDER_MODEL');
      expect(err.retryable).toBe(false);
      expect(err.message).toMatch(/CLOUD_MODEL_ERROR/);
    }
  });

  it('a request over the 10 MiB message limit is a final PROVIDER_VALIDATION, whether the client or the service refuses it', async () => {
    const big = randomInput([1, 3, 1024, 1024], 2); // 12.6 MB
    const local = await withClient(vertex(grpcUrl, 'det'), (c) => failure(c.infer({ model: 'det', inputs: big })));
    expect(local.code, local.message).toBe('PROVIDER_VALIDATION');
    expect(local.status).toBe(413);
    expect(local.message).toMatch(/over the gRPC message limit .*Attempted to send message with a size larger than 10485760/);
    // A client without the limit: the service's own limit refuses it (RESOURCE_EXHAUSTED).
    const remote = await withClient(vertex(grpcUrl, 'det'), (c) => failure(c.infer({ model: 'det', inputs: big })), { vertex: { 'grpc.max_send_message_length': -1 } });
    expect(remote.code, remote.message).toBe('PROVIDER_VALIDATION');
    expect(remote.message).toMatch(/Received message larger than max \(\d+ vs 10485760\)/);
    expect(remote.retryable).toBe(false);
    // An answer over the client's own receive limit is the endpoint's, not the request's.
    const answer = await withClient(vertex(grpcUrl, 'det'), (c) => failure(c.infer({ model: 'det', inputs: randomInput([1, 3, 64, 64]) })), { vertex: { 'grpc.max_receive_message_length': 1000 } });
    expect(answer.code, answer.message).toBe('PROVIDER_RESPONSE');
    expect(answer.message).toMatch(/answer over this client's gRPC message limit/);
  });

  it('counts the calls under their own routes, logs each one\'s inference line, and stays healthy after the refusals', async () => {
    const input = randomInput([1, 3, 48, 96], 8);
    const res = await withClient(vertex(grpcUrl, 'cls'), (c) => c.infer({ model: 'cls', inputs: input }));
    expectSameOutputs(res.outputs, await localRun(CLS, input));
    expect((await httpsGet(`${httpUrl}/ping`)).status).toBe(200);
    const metrics = (await httpsGet(`${httpUrl}/metrics`)).body;
    expect(metrics).toMatch(/tandem_cloud_requests_total\{route="vertex-grpc-rawPredict",model="cls",status="200"\} [1-9]/);
    expect(metrics).toMatch(/tandem_cloud_requests_total\{route="vertex-grpc-predict",model="cls",status="200"\} [1-9]/);
    expect(metrics).toMatch(/tandem_cloud_requests_total\{route="vertex-grpc-rawPredict",model="cls",status="401"\} [1-9]/);
    expect(metrics).toMatch(/tandem_cloud_requests_total\{route="vertex-grpc-rawPredict",model="cls",status="400"\} [1-9]/);
    expect(metrics).toMatch(/tandem_cloud_request_bytes_total\{route="vertex-grpc-rawPredict"\} [1-9]/);
    const lines = out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    const inference = lines.filter((l) => l['msg'] === 'inference' && l['route'] === 'vertex-grpc-rawPredict');
    expect(inference.length).toBeGreaterThan(0);
    expect(inference.at(-1)).toMatchObject({ model: 'cls', cut: null, status: 200, bytesIn: expect.any(Number), bytesOut: expect.any(Number), computeMs: expect.any(Number), totalMs: expect.any(Number) });
    expect(lines.some((l) => l['msg'] === 'request refused' && l['route'] === 'vertex-grpc-predict' && l['code'] === 'CLOUD_AUTH_INVALID')).toBe(true);
  });

  it('Application Default Credentials (workload identity federation) reach it through gax\'s own channel credentials, and no metadata server is asked', async () => {
    const audience = '//iam.googleapis.com/projects/123456789/locations/global/workloadIdentityPools/edge-pool/providers/gateways';
    const subjectToken = 'eyJhbGciOiJSUzI1NiJ9.edge-gateway-oidc.signature';
    let exchanges = 0;
    const metadataHits: string[] = [];
    // Google's STS (RFC 8693 token exchange): it issues the token the service holds.
    const sts = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        const form = new URLSearchParams(body);
        const ok = form.get('subject_token') === subjectToken && form.get('audience') === audience;
        exchanges += 1;
        res.writeHead(ok ? 200 : 400, { 'content-type': 'application/json' }).end(JSON.stringify(ok
          ? { access_token: CREDS.vertexToken, issued_token_type: 'urn:ietf:params:oauth:token-type:access_token', token_type: 'Bearer', expires_in: 3600 }
          : { error: 'invalid_grant' }));
      });
    });
    const metadata = createServer((req, res) => {
      metadataHits.push(req.url ?? '');
      res.writeHead(404).end();
    });
    const listen = async (server: HttpServer): Promise<number> => {
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      return (server.address() as AddressInfo).port;
    };
    const [stsPort, metadataPort] = [await listen(sts), await listen(metadata)];
    const restore = isolateEnv(['GOOGLE_APPLICATION_CREDENTIALS', 'GOOGLE_CLOUD_PROJECT', 'GCLOUD_PROJECT', 'GCE_METADATA_HOST', 'GCE_METADATA_IP', 'CLOUDSDK_CONFIG', 'GOOGLE_CLOUD_QUOTA_PROJECT']);
    const adcDir = mkdtempSync(join(tmpdir(), 'tandem-grpc-adc-'));
    try {
      process.env['CLOUDSDK_CONFIG'] = join(adcDir, 'gcloud');
      process.env['GCE_METADATA_HOST'] = `127.0.0.1:${metadataPort}`;
      process.env['GCE_METADATA_IP'] = `127.0.0.1:${metadataPort}`;
      writeFileSync(join(adcDir, 'subject-token'), subjectToken);
      writeFileSync(join(adcDir, 'wif.json'), JSON.stringify({
        type: 'external_account', audience, subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
        token_url: `http://127.0.0.1:${stsPort}/v1/token`, credential_source: { file: join(adcDir, 'subject-token') },
      }));
      process.env['GOOGLE_APPLICATION_CREDENTIALS'] = join(adcDir, 'wif.json');
      const input = randomInput([1, 3, 8, 10], 13);
      const want = await localRun(CLS, input);
      // No token and no sslCreds: what production runs, with the endpoint and the roots swapped.
      const cfg: EndpointConfig = { name: 'vx-adc', kind: 'vertex', region: 'europe-west4', url: grpcUrl, transport: 'grpc', project: 'proj', target: 'cls' };
      for (const wire of ['binary', 'json'] as const) {
        await withClient({ ...cfg, wire }, async (c) => {
          for (let i = 0; i < 2; i++) expectSameOutputs((await c.infer({ model: 'cls', inputs: input }, { deadline: Date.now() + 30_000 })).outputs, want);
        });
      }
      // One exchange per client: the auth library keeps the token.
      expect(exchanges).toBe(2);
      expect(metadataHits).toEqual([]);
    } finally {
      restore();
      rmSync(adcDir, { recursive: true, force: true });
      await new Promise<void>((resolve) => sts.close(() => resolve()));
      await new Promise<void>((resolve) => metadata.close(() => resolve()));
    }
  });

  it('SIGTERM drains the service and closes the gRPC port', async () => {
    expect(await refused(grpcPort)).toBe(false);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(out).toMatch(/"msg":"drained"/);
    expect(await refused(grpcPort)).toBe(true);
  });
});

describe('Vertex AI over gRPC: overload, deadlines, drain and plaintext (an in-process service)', () => {
  /** A service whose tail loads wait on a gate: a split request holds its model's slot for as long as the test wants. */
  /** A call holding its model's slot; `answer` settles once the gate opens. */
  interface Held {
    answer: Promise<TensorMap>;
  }

  async function gated(extra: Partial<CloudServiceOptions>): Promise<{ s: CloudService; hold: (cut: string) => Promise<Held>; open: () => void }> {
    let entered: () => void = () => undefined;
    const gates: (() => void)[] = [];
    const s = await startService(modelDir, {
      grpcPort: 0,
      tls: TLS,
      ...extra,
      extractTail: async (bytes) => {
        entered();
        await new Promise<void>((r) => gates.push(r));
        return bytes;
      },
    });
    const hold = async (cut: string): Promise<Held> => {
      const inside = new Promise<void>((r) => { entered = r; });
      const c = createProviderClient(vertex(s.grpcUrl as string, 'det'));
      const answer = c.infer({ model: 'det', cut, inputs: randomInput([1, 3, 32, 32]) }).then((r) => r.outputs).finally(() => c.close());
      answer.catch(() => undefined);
      await inside;
      return { answer };
    };
    return { s, hold, open: () => { for (const g of gates.splice(0)) g(); } };
  }

  it('overload is RESOURCE_EXHAUSTED with RetryInfo: PROVIDER_THROTTLED, retryAfterMs 1000, on both methods; the same client succeeds once the slot is free', async () => {
    const { s, hold, open } = await gated({ maxConcurrent: 1, maxQueue: 0 });
    try {
      for (const [i, wire] of (['binary', 'json'] as const).entries()) {
        const holder = await hold(`c${i + 1}`);
        const c = createProviderClient(vertex(s.grpcUrl as string, 'det', { wire }));
        try {
          const small = randomInput([1, 3, 32, 32]);
          const err = await failure(c.infer({ model: 'det', inputs: small }));
          open();
          expect(err.code, err.message).toBe('PROVIDER_THROTTLED');
          expect(err.status).toBe(429);
          expect(err.retryable).toBe(true);
          // google.rpc.RetryInfo's retry_delay, read off the call's status details.
          expect(err.retryAfterMs).toBe(1000);
          expect((await holder.answer)['sigmoid_0.tmp_0']?.dims).toEqual([1, 1, 32, 32]);
          expect((await c.infer({ model: 'det', inputs: small })).outputs['sigmoid_0.tmp_0']?.dims).toEqual([1, 1, 32, 32]);
        } finally {
          open();
          await c.close();
        }
      }
      const metrics = await s.metrics.registry.getSingleMetricAsString('tandem_cloud_rejections_total');
      expect(metrics).toMatch(/model="det",reason="queue_full"\} 2/);
    } finally {
      open();
      await s.drain();
    }
  });

  it('the service\'s deadline is DEADLINE_EXCEEDED (PROVIDER_TIMEOUT, 504) before the client\'s own; a call\'s deadline takes it out of the queue unrun', async () => {
    const { s, open } = await gated({ maxConcurrent: 1, maxQueue: 1, requestTimeoutMs: 400 });
    try {
      // The call's own tail load is held at the gate: only the service's deadline can end it.
      // (A holder in front of it would give its slot up at its own 400 ms deadline, and the call
      // would then run if it reached the service later than a run takes.)
      const c = createProviderClient(vertex(s.grpcUrl as string, 'det'));
      try {
        const t0 = Date.now();
        const err = await failure(c.infer({ model: 'det', cut: 'c1', inputs: randomInput([1, 3, 32, 32]) }, { deadline: Date.now() + 30_000 }));
        const elapsed = Date.now() - t0;
        expect(err.code, err.message).toBe('PROVIDER_TIMEOUT');
        // The service's answer, not the client's timer: that one has no status.
        expect(err.status).toBe(504);
        expect(err.message).toMatch(/DEADLINE_EXCEEDED: CLOUD_DEADLINE/);
        expect(elapsed).toBeGreaterThanOrEqual(350);
        expect(elapsed).toBeLessThan(10_000);
      } finally {
        open();
        await c.close();
      }
    } finally {
      open();
      await s.drain();
    }
    const second = await gated({ maxConcurrent: 1, maxQueue: 1 });
    try {
      const holder = await second.hold('c2');
      const c = createProviderClient(vertex(second.s.grpcUrl as string, 'det'));
      try {
        const err = await failure(c.infer({ model: 'det', inputs: randomInput([1, 3, 32, 32]) }, { deadline: Date.now() + 400 }));
        expect(err.code, err.message).toBe('PROVIDER_TIMEOUT');
        // Left the queue at its deadline: the queue is empty while the holder still runs.
        await new Promise((r) => setTimeout(r, 200));
        expect(await second.s.metrics.registry.getSingleMetricAsString('tandem_cloud_queue_depth')).toMatch(/model="det"\} 0/);
        // grpc-js cancels the call at its deadline: that is the deadline's refusal, not the client leaving.
        expect(await second.s.metrics.registry.getSingleMetricAsString('tandem_cloud_rejections_total')).toMatch(/model="det",reason="deadline"\} 1/);
        const requests = await second.s.metrics.registry.getSingleMetricAsString('tandem_cloud_requests_total');
        expect(requests).toMatch(/route="vertex-grpc-rawPredict",model="det",status="504"\} 1/);
        expect(requests).not.toMatch(/status="499"/);
      } finally {
        second.open();
        await holder.answer.catch(() => undefined);
        await c.close();
      }
      const computed = await second.s.metrics.registry.getSingleMetricAsString('tandem_cloud_compute_duration_seconds');
      // Only the holder ran.
      expect(computed).toMatch(/tandem_cloud_compute_duration_seconds_count\{model="det",cut="c2"\} 1/);
      expect(computed).not.toMatch(/model="det",cut="whole"/);
    } finally {
      second.open();
      await second.s.drain();
    }
  });

  it('drain refuses new calls, lets the call in flight finish, then closes the port', async () => {
    const { s, hold, open } = await gated({});
    const port = s.grpcPort as number;
    const holder = await hold('c3');
    const drained = s.drain();
    try {
      const err = await withClient(vertex(s.grpcUrl as string, 'cls'), (c) => failure(c.infer({ model: 'cls', inputs: randomInput([1, 3, 8, 10]) }, { deadline: Date.now() + 10_000 })));
      expect(err.retryable, err.message).toBe(true);
      expect(['PROVIDER_UNAVAILABLE', 'PROVIDER_NETWORK']).toContain(err.code);
      open();
      expect((await holder.answer)['sigmoid_0.tmp_0']?.dims).toEqual([1, 1, 32, 32]);
      await drained;
      expect(await refused(port)).toBe(true);
    } finally {
      open();
      await drained;
    }
  });

  it('a call still running at the drain bound (request timeout + 1 s) is cancelled', async () => {
    const { s, open } = await gated({ requestTimeoutMs: 300 });
    // Held in its run, which a deadline cannot end on the event loop's thread (a wait for a
    // load it ends at the deadline): only the drain's bound is left to end the call.
    const partition = await s.models.partition('det', null);
    const run = partition.run.bind(partition);
    let entered: () => void = () => undefined;
    const inside = new Promise<void>((r) => { entered = r; });
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => { release = r; });
    partition.run = async (inputs, options) => {
      entered();
      await gate;
      return run(inputs, options);
    };
    const c = createProviderClient(vertex(s.grpcUrl as string, 'det'));
    const holder = { answer: c.infer({ model: 'det', inputs: randomInput([1, 3, 32, 32]) }).finally(() => c.close()) };
    holder.answer.catch(() => undefined);
    await inside;
    const t0 = Date.now();
    const drained = s.drain();
    try {
      const settled = await holder.answer.then(() => 'answered', (e: unknown) => e);
      const elapsed = Date.now() - t0;
      // The gate is still shut: only the forced shutdown can have ended the call.
      expect(settled).toBeInstanceOf(ProviderError);
      expect(elapsed).toBeGreaterThanOrEqual(1200);
      expect(elapsed).toBeLessThan(8000);
    } finally {
      release();
      open();
      await drained;
    }
  });

  /** A bare grpc-js client of the service's gRPC front: Predict calls of hand-made bytes, their status back. */
  async function rawFront(s: CloudService): Promise<{ predict: (message: Buffer, metadata: Record<string, string>) => Promise<{ code: number; details: string }>; status: typeof import('google-gax').grpc.status; close: () => void }> {
    const { grpc } = await import('google-gax');
    const raw = new grpc.Client(`127.0.0.1:${s.grpcPort as number}`, grpc.credentials.createInsecure());
    const predict = (message: Buffer, metadata: Record<string, string>): Promise<{ code: number; details: string }> => new Promise((resolve) => {
      const md = new grpc.Metadata();
      for (const [k, v] of Object.entries(metadata)) md.set(k, v);
      raw.makeUnaryRequest('/google.cloud.aiplatform.v1.PredictionService/Predict', (b: Buffer) => b, (b: Buffer) => b, message, md, { deadline: Date.now() + 30_000 },
        (error) => resolve({ code: error?.code ?? 0, details: error?.details ?? '' }));
    });
    return { predict, status: grpc.status, close: () => raw.close() };
  }

  /** A PredictRequest's wire bytes: the `endpoint` field for the cls model, then `rest`. */
  const predictRequest = (rest: Buffer = Buffer.alloc(0)): Buffer => {
    const endpoint = Buffer.from('projects/proj/locations/l/endpoints/cls');
    return Buffer.concat([Buffer.from([0x0a, endpoint.byteLength]), endpoint, rest]);
  };

  it('a call without the token is refused before its message is decoded (UNAUTHENTICATED, not the decoder\'s INVALID_ARGUMENT), and counted under its model', async () => {
    const s = await startService(modelDir, { grpcPort: 0 });
    const front = await rawFront(s);
    try {
      // A well-framed PredictRequest whose one instance is no google.protobuf.Value (a varint
      // that never ends): only decoding the instances finds that out.
      const message = predictRequest(Buffer.from([0x12, 0x02, 0xff, 0xff]));
      const anonymous = await front.predict(message, {});
      expect(anonymous.code, anonymous.details).toBe(front.status.UNAUTHENTICATED);
      expect(anonymous.details).toMatch(/^CLOUD_AUTH_MISSING/);
      const authorized = await front.predict(message, { authorization: `Bearer ${CREDS.vertexToken}` });
      expect(authorized.code, authorized.details).toBe(front.status.INVALID_ARGUMENT);
      expect(authorized.details).toMatch(/^CLOUD_GRPC_MESSAGE: the PredictRequest could not be decoded/);
      const requests = await s.metrics.registry.getSingleMetricAsString('tandem_cloud_requests_total');
      expect(requests).toMatch(/route="vertex-grpc-predict",model="cls",status="401"\} 1$/m);
      expect(requests).toMatch(/route="vertex-grpc-predict",model="cls",status="400"\} 1$/m);
    } finally {
      front.close();
      await s.drain();
    }
  });

  it('reads x-tandem-deadline-ms from the call\'s metadata as the HTTP fronts read the header', async () => {
    const s = await startService(modelDir, { grpcPort: 0 });
    const front = await rawFront(s);
    try {
      const call = (budget: string): Promise<{ code: number; details: string }> =>
        front.predict(predictRequest(), { authorization: `Bearer ${CREDS.vertexToken}`, 'x-tandem-deadline-ms': budget });
      const garbage = await call('soon');
      expect(garbage.code, garbage.details).toBe(front.status.INVALID_ARGUMENT);
      expect(garbage.details).toMatch(/^CLOUD_DEADLINE_INVALID/);
      const spent = await call('0');
      expect(spent.code, spent.details).toBe(front.status.DEADLINE_EXCEEDED);
      expect(spent.details).toMatch(/^CLOUD_DEADLINE: the request's deadline \(x-tandem-deadline-ms: 0\)/);
    } finally {
      front.close();
      await s.drain();
    }
  });

  it('a call whose message never arrives whole does not hold its connection past two request timeouts and the drain grace', async () => {
    const s = await startService(modelDir, { grpcPort: 0, requestTimeoutMs: 300 });
    const session = http2Connect(`http://127.0.0.1:${s.grpcPort as number}`);
    session.on('error', () => undefined);
    try {
      const stream = session.request({ ':method': 'POST', ':path': '/google.cloud.aiplatform.v1.PredictionService/Predict', 'content-type': 'application/grpc', te: 'trailers' });
      stream.on('error', () => undefined);
      const closed = new Promise<number>((resolve) => stream.once('close', () => resolve(Date.now())));
      // A message announced as 9 MiB, 1 MiB of it sent, the rest never.
      const frame = Buffer.alloc(5);
      frame.writeUInt32BE(9 * 1024 * 1024, 1);
      const t0 = Date.now();
      stream.write(Buffer.concat([frame, Buffer.alloc(1024 * 1024)]));
      const ended = await Promise.race([closed, new Promise<undefined>((r) => setTimeout(() => r(undefined), 5000))]);
      expect(ended, 'the stream was still open after 5 s').toBeDefined();
      // Connection age (300 ms, ±10 %) plus its grace (300 ms + 1 s).
      expect((ended as number) - t0).toBeLessThan(2500);
    } finally {
      session.destroy();
      await s.drain();
    }
  });

  it('a metadata value grpc-js refuses is an info line of the service\'s log, not an error line on stderr', async () => {
    const lines: string[] = [];
    const s = await startService(modelDir, { grpcPort: 0, logger: pino({ level: 'info' }, { write: (l: string) => void lines.push(l) }) });
    const stderr = vi.spyOn(console, 'error');
    const session = http2Connect(`http://127.0.0.1:${s.grpcPort as number}`);
    session.on('error', () => undefined);
    try {
      const stream = session.request({
        ':method': 'POST', ':path': '/google.cloud.aiplatform.v1.PredictionService/Predict', 'content-type': 'application/grpc', te: 'trailers',
        // Legal in HTTP/2, not in gRPC metadata: grpc-js drops the entry and says so.
        'x-client-note': Buffer.from([0x63, 0xe9]).toString('latin1'),
      });
      stream.on('error', () => undefined);
      stream.end(Buffer.alloc(5));
      await new Promise((r) => stream.once('close', r));
      expect(stderr.mock.calls.filter((c) => /Failed to add metadata entry/.test(String(c[0])))).toEqual([]);
      const logged = lines.map((l) => JSON.parse(l) as { level: number; msg: string; grpc?: string });
      const refused = logged.filter((l) => /Failed to add metadata entry x-client-note/.test(l.grpc ?? ''));
      expect(refused.map((l) => l.level)).toEqual([30]);
    } finally {
      stderr.mockRestore();
      session.destroy();
      await s.drain();
    }
  });

  it('the service\'s body limit holds on gRPC (INVALID_ARGUMENT CLOUD_TOO_LARGE), and worker threads serve it like the event loop', async () => {
    const s = await startService(modelDir, { grpcPort: 0, tls: TLS, maxBodyBytes: 200_000, workers: 1 });
    try {
      const small = randomInput([1, 3, 48, 96], 6); // 55 KB, 152 KB as Predict's Values
      for (const wire of ['binary', 'json'] as const) {
        const res = await withClient(vertex(s.grpcUrl as string, 'cls', { wire }), (c) => c.infer({ model: 'cls', inputs: small }));
        expectSameOutputs(res.outputs, await localRun(CLS, small));
      }
      const err = await withClient(vertex(s.grpcUrl as string, 'cls'), (c) => failure(c.infer({ model: 'cls', inputs: randomInput([1, 3, 96, 192]) }))); // 221 KB
      expect(err.code, err.message).toBe('PROVIDER_VALIDATION');
      expect(err.message).toMatch(/CLOUD_TOO_LARGE: request body of \d+ bytes exceeds this route's limit of 200000 bytes/);
    } finally {
      await s.drain();
    }
  });

  it('a gRPC port already in use refuses the service\'s start (CLOUD_GRPC_LISTEN)', async () => {
    const first = await startService(modelDir, { grpcPort: 0 });
    try {
      await expect(startService(modelDir, { grpcPort: first.grpcPort as number })).rejects.toMatchObject({ code: 'CLOUD_GRPC_LISTEN', message: expect.stringContaining(`:${first.grpcPort}`) });
    } finally {
      await first.drain();
    }
  });

  it('plaintext gRPC (an http:// URL) carries the token as call metadata; a wrong one is refused', async () => {
    const s = await startService(modelDir, { grpcPort: 0 });
    try {
      expect(s.grpcUrl).toMatch(/^http:\/\//);
      const input = randomInput([1, 3, 48, 96], 4);
      for (const wire of ['binary', 'json'] as const) {
        const res = await withClient(vertex(s.grpcUrl as string, 'cls', { wire }), (c) => c.infer({ model: 'cls', inputs: input }));
        expectSameOutputs(res.outputs, await localRun(CLS, input));
        const err = await withClient(vertex(s.grpcUrl as string, 'cls', { wire, token: 'wrong' }), (c) => failure(c.infer({ model: 'cls', inputs: input })));
        expect(err.code).toBe('PROVIDER_AUTH');
      }
      // An https:// URL against it: TLS fails, the call never reaches the service.
      const tls = await withClient(vertex((s.grpcUrl as string).replace('http:', 'https:'), 'cls'), (c) => failure(c.infer({ model: 'cls', inputs: input }, { deadline: Date.now() + 10_000 })));
      expect(tls.retryable).toBe(true);
    } finally {
      await s.drain();
    }
  });
});

describe('the Vertex client\'s gRPC error mapping and transport configuration', () => {
  const grpcError = (code: number, message: string, extra: Record<string, unknown> = {}): Error => Object.assign(new Error(message), { code, ...extra });

  it('reads RetryInfo.retryDelay from the decoded status details (number, int64 string or Long seconds, nanos), cut to an hour', () => {
    expect(retryInfoOf({ statusDetails: [{ reason: 'X' }, { retryDelay: { seconds: 2, nanos: 500_000_000 } }] })).toBe(2500);
    expect(retryInfoOf({ statusDetails: [{ retryDelay: { seconds: '7' } }] })).toBe(7000);
    expect(retryInfoOf({ statusDetails: [{ retryDelay: { seconds: { toNumber: () => 3 }, nanos: 0 } }] })).toBe(3000);
    expect(retryInfoOf({ statusDetails: [{ retryDelay: { seconds: '9999999999' } }] })).toBe(MAX_RETRY_AFTER_MS);
    expect(retryInfoOf({ statusDetails: [{ retryDelay: { seconds: '-1' } }] })).toBeUndefined();
    expect(retryInfoOf({ statusDetails: [{ retryDelay: { seconds: -4 } }] })).toBeUndefined();
    expect(retryInfoOf({ statusDetails: [{ reason: 'X' }] })).toBeUndefined();
    expect(retryInfoOf({})).toBeUndefined();
    expect(retryInfoOf(null)).toBeUndefined();
  });

  it('maps gRPC codes: RetryInfo kept on RESOURCE_EXHAUSTED and UNAVAILABLE only, a request over the size limit is validation (an answer over it a response error), ErrorInfo CLOUD_MODEL_ERROR is a model error', () => {
    const retry = { statusDetails: [{ retryDelay: { seconds: 1 } }] };
    expect(vertexAnswerError('e', grpcError(8, '8 RESOURCE_EXHAUSTED: busy', retry))).toMatchObject({ code: 'PROVIDER_THROTTLED', status: 429, retryAfterMs: 1000 });
    expect(vertexAnswerError('e', grpcError(14, '14 UNAVAILABLE: draining', retry))).toMatchObject({ code: 'PROVIDER_UNAVAILABLE', status: 503, retryAfterMs: 1000 });
    expect(vertexAnswerError('e', grpcError(3, '3 INVALID_ARGUMENT: no', retry))?.retryAfterMs).toBeUndefined();
    const trailers = (entries: Record<string, string>) => ({ metadata: { getMap: () => entries } });
    expect(vertexAnswerError('e', grpcError(8, '8 RESOURCE_EXHAUSTED: Received message larger than max (11 vs 10)', trailers({ 'content-type': 'application/grpc' })))).toMatchObject({ code: 'PROVIDER_VALIDATION', status: 413 });
    expect(vertexAnswerError('e', grpcError(8, '8 RESOURCE_EXHAUSTED: Received message larger than max (11 vs 10)', trailers({})))).toMatchObject({ code: 'PROVIDER_RESPONSE' });
    expect(vertexAnswerError('e', grpcError(8, '8 RESOURCE_EXHAUSTED: Attempted to send message with a size larger than 10', trailers({})))).toMatchObject({ code: 'PROVIDER_VALIDATION', status: 413 });
    expect(vertexAnswerError('e', grpcError(3, '3 INVALID_ARGUMENT: x', { reason: 'CLOUD_MODEL_ERROR' }))).toMatchObject({ code: 'PROVIDER_MODEL', status: 400 });
    expect(vertexAnswerError('e', grpcError(4, '4 DEADLINE_EXCEEDED: late'))).toMatchObject({ code: 'PROVIDER_TIMEOUT', status: 504 });
    expect(vertexAnswerError('e', grpcError(16, '16 UNAUTHENTICATED: who'))).toMatchObject({ code: 'PROVIDER_AUTH', status: 401 });
    expect(vertexAnswerError('e', grpcError(12, '12 UNIMPLEMENTED: no such method'))).toMatchObject({ code: 'PROVIDER_VALIDATION', status: 501 });
    expect(vertexAnswerError('e', new Error('socket hang up'))).toBeUndefined();
  });

  it('`tandem cloud serve --grpc-port` takes a port number only', async () => {
    const { runCliInProcess } = await import('../helpers/cli.js');
    for (const bad of ['70000', 'abc', '-1']) {
      const r = await runCliInProcess(['cloud', 'serve', '--grpc-port', bad, '--models', modelDir]);
      expect(r.code, bad).toBe(2);
      expect(r.err).toMatch(/--grpc-port must be 0-65535/);
    }
  });

  it('edge.yaml takes `transport` on vertex endpoints only', async () => {
    const { EndpointSchema } = await import('../../edge/config.js');
    const base = { name: 'v', kind: 'vertex', region: 'europe-west4', project: 'p', target: 't' };
    expect(EndpointSchema.parse({ ...base, transport: 'grpc' })).toMatchObject({ transport: 'grpc' });
    expect(EndpointSchema.safeParse({ ...base, transport: 'http2' }).success).toBe(false);
    const sm = EndpointSchema.safeParse({ name: 's', kind: 'sagemaker', region: 'eu-central-1', transport: 'grpc' });
    expect(sm.success).toBe(false);
    expect(sm.error?.issues[0]?.message).toMatch(/transport is for vertex endpoints/);
  });

  it('refuses an unknown transport and a URL scheme that says nothing about TLS', () => {
    const base = { name: 'v', kind: 'vertex' as const, region: 'r', project: 'p', target: 't' };
    expect(() => createProviderClient({ ...base, transport: 'http2' as unknown as 'grpc' })).toThrow(/transport must be "grpc" or "rest"/);
    expect(() => createProviderClient({ ...base, url: 'grpc://127.0.0.1:1', transport: 'grpc' })).toThrow(/http:\/\/ \(plaintext\) or https:\/\/ \(TLS\)/);
    expect(() => createProviderClient({ ...base, url: 'not a url' })).toThrow(/is not a URL/);
    expect(() => createProviderClient({ ...base, url: 'https://127.0.0.1:1', transport: 'grpc' })).not.toThrow();
    expect(() => createProviderClient({ ...base, transport: 'rest' })).not.toThrow();
  });
});
