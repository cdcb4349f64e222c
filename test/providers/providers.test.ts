import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CloudService } from '../../cloud/server.js';
import { createProviderClient, type EndpointConfig, type PaiEasEndpointConfig, type ProviderClient, type VertexEndpointConfig } from '../../src/providers/index.js';
import { CLS, CREDS, DET, expectSameOutputs, localRun, modelsDir, randomInput, startService } from '../helpers/cloud.js';
import { failure } from '../helpers/errors.js';

let svc: CloudService;
let cleanup: () => void;

beforeAll(async () => {
  const m = modelsDir();
  cleanup = m.cleanup;
  svc = await startService(m.dir);
});
afterAll(async () => {
  await svc.drain();
  cleanup();
});

function endpoints(): Record<string, EndpointConfig> {
  return {
    'sagemaker-binary': { name: 'sm', kind: 'sagemaker', region: 'eu-central-1', url: svc.url, target: 'tandem-ep' },
    'sagemaker-json': { name: 'sm-json', kind: 'sagemaker', region: 'eu-central-1', url: svc.url, target: 'tandem-ep', wire: 'json' },
    'vertex-raw': { name: 'vx', kind: 'vertex', region: 'europe-west4', url: svc.url, project: 'proj', target: 'ep1', token: CREDS.vertexToken },
    'vertex-predict': { name: 'vx-json', kind: 'vertex', region: 'europe-west4', url: svc.url, project: 'proj', target: 'ep1', token: CREDS.vertexToken, wire: 'json' },
    'eas-binary': { name: 'eas', kind: 'pai-eas', region: 'cn-shanghai', url: svc.url, target: 'svc', token: CREDS.easToken },
    'oip-binary': { name: 'oip', kind: 'oip', region: 'local', url: svc.url },
    'oip-json': { name: 'oip-json', kind: 'oip', region: 'local', url: svc.url, wire: 'json' },
  };
}

const sdk = { sagemaker: { credentials: CREDS.aws } };

function client(key: string): ProviderClient {
  const cfg = endpoints()[key];
  if (!cfg) throw new Error(key);
  return createProviderClient(cfg, sdk);
}

describe('every provider client reaches tandem cloud serve and matches a local run (whole model)', () => {
  const small = randomInput([1, 3, 48, 96], 7); // 55 KB
  const tiny = randomInput([1, 3, 8, 10], 3); // ~1 KB
  for (const key of Object.keys({ 'sagemaker-binary': 1, 'sagemaker-json': 1, 'vertex-raw': 1, 'vertex-predict': 1, 'eas-binary': 1, 'oip-binary': 1, 'oip-json': 1 })) {
    it(`${key}: 1 KB and 55 KB payloads`, async () => {
      const c = client(key);
      try {
        for (const input of [tiny, small]) {
          const res = await c.infer({ model: 'cls', inputs: input }, { deadline: Date.now() + 30_000 });
          expectSameOutputs(res.outputs, await localRun(CLS, input));
          expect(res.timing.remoteMs).toBeGreaterThan(0);
          expect(res.timing.totalMs).toBeGreaterThanOrEqual(res.timing.remoteMs);
          expect(res.bytesSent).toBeGreaterThan(0);
        }
      } finally {
        await c.close();
      }
    });
  }

  for (const key of ['sagemaker-binary', 'vertex-raw', 'eas-binary', 'oip-binary']) {
    it(`${key}: 5 MB payload on the detection model`, async () => {
      const input = randomInput([1, 3, 640, 640], 11); // 4.9 MB
      const c = client(key);
      try {
        const res = await c.infer({ model: 'det', inputs: input });
        expect(res.bytesSent).toBeGreaterThan(4.9e6);
        expectSameOutputs(res.outputs, await localRun(DET, input), 1e-4);
      } finally {
        await c.close();
      }
    });
  }

  it('vertex-predict: 4-D outputs of the detection model survive the JSON instances path', async () => {
    const input = randomInput([1, 3, 64, 96], 5);
    const c = client('vertex-predict');
    try {
      const res = await c.infer({ model: 'det', inputs: input });
      expectSameOutputs(res.outputs, await localRun(DET, input), 1e-4);
    } finally {
      await c.close();
    }
  });

  it('float16 compression on the wire gives outputs close to the local run', async () => {
    const c = client('sagemaker-binary');
    const res = await c.infer({ model: 'cls', inputs: small, compression: 'float16' });
    expectSameOutputs(res.outputs, await localRun(CLS, small), 1e-2);
    await c.close();
  });
});

describe('front API details', () => {
  it('PAI-EAS request signing is accepted by a service holding the keys and refused with the wrong secret', async () => {
    const m = modelsDir();
    const key = { keyId: 'eas-key', secret: 'eas-secret' };
    const s = await startService(m.dir, { credentials: { easSigning: key } });
    try {
      const cfg: EndpointConfig = { name: 'eas-signed', kind: 'pai-eas', region: 'cn-hangzhou', url: s.url, target: 'cls' };
      const input = randomInput([1, 3, 48, 96], 9);
      const good = createProviderClient(cfg, { easSigning: key });
      expectSameOutputs((await good.infer({ model: 'cls', inputs: input })).outputs, await localRun(CLS, input));
      const bad = createProviderClient(cfg, { easSigning: { ...key, secret: 'nope' } });
      await expect(bad.infer({ model: 'cls', inputs: input })).rejects.toMatchObject({ code: 'PROVIDER_AUTH', retryable: false });
    } finally {
      await s.drain();
      m.cleanup();
    }
  });

  it('Vertex rawPredict also takes a raw body (as a plain HTTP client sends it) and answers raw', async () => {
    const { encodeTensorMap, decodePayload } = await import('../../src/codec/index.js');
    const input = randomInput([1, 3, 48, 96], 12);
    const res = await fetch(`${svc.url}/v1/projects/p/locations/l/endpoints/cls:rawPredict`, {
      method: 'POST', body: encodeTensorMap(input), headers: { authorization: `Bearer ${CREDS.vertexToken}`, 'content-type': 'application/x-msgpack' },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/x-msgpack');
    expectSameOutputs(decodePayload(new Uint8Array(await res.arrayBuffer())).tensors, await localRun(CLS, input));
  });
});

describe('provider errors are classified', () => {
  const input = randomInput([1, 3, 48, 96]);


  it('wrong credentials are refused and final, for every front', async () => {
    const e = endpoints();
    const bad: ProviderClient[] = [
      createProviderClient(e['sagemaker-binary'] as EndpointConfig, { sagemaker: { credentials: { accessKeyId: CREDS.aws.accessKeyId, secretAccessKey: 'wrong' } } }),
      createProviderClient(e['sagemaker-binary'] as EndpointConfig, { sagemaker: { credentials: { accessKeyId: 'AKIDOTHER', secretAccessKey: CREDS.aws.secretAccessKey } } }),
      createProviderClient({ ...(e['vertex-raw'] as VertexEndpointConfig), token: 'wrong' }),
      createProviderClient({ ...(e['eas-binary'] as PaiEasEndpointConfig), token: 'wrong' }),
    ];
    for (const c of bad) {
      const err = await failure(c.infer({ model: 'cls', inputs: input }));
      expect(err.code).toBe('PROVIDER_AUTH');
      expect(err.retryable).toBe(false);
      await c.close();
    }
  });

  it('unknown model and bad inputs are final validation / model errors', async () => {
    const c = client('oip-binary');
    expect((await failure(c.infer({ model: 'nope', inputs: input }))).code).toBe('PROVIDER_VALIDATION');
    const wrongName = { y: input['x'] as NonNullable<typeof input['x']> };
    expect((await failure(c.infer({ model: 'cls', inputs: wrongName }))).code).toBe('PROVIDER_VALIDATION');
    const wrongRank = randomInput([3, 48, 96]);
    const err = await failure(c.infer({ model: 'cls', inputs: wrongRank }));
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(/shape/);
  });

  it('inputs the model itself refuses are a final PROVIDER_MODEL on every client', async () => {
    // Passes the static shape check (dynamic width) and is refused by an operator.
    const empty = randomInput([1, 3, 48, 0]);
    for (const key of ['sagemaker-binary', 'vertex-raw', 'eas-binary', 'oip-binary']) {
      const c = client(key);
      try {
        const err = await failure(c.infer({ model: 'cls', inputs: empty }));
        expect(err.code, `${key}: ${err.message}`).toBe('PROVIDER_MODEL');
        expect(err.retryable).toBe(false);
      } finally {
        await c.close();
      }
    }
  });

  it('a SageMaker answer cut off mid-body is a retryable network error, not the endpoint\'s refusal', async () => {
    const { createServer: createNetServer } = await import('node:net');
    const raw = createNetServer((socket) => {
      socket.on('error', () => undefined);
      socket.once('data', () => {
        socket.write('HTTP/1.1 200 OK\r\ncontent-type: application/x-msgpack\r\ncontent-length: 100000\r\n\r\n');
        socket.write(Buffer.alloc(1000));
        setTimeout(() => socket.destroy(), 20);
      });
    });
    await new Promise<void>((resolve) => raw.listen(0, '127.0.0.1', resolve));
    const { port } = raw.address() as { port: number };
    const c = createProviderClient({ name: 'sm', kind: 'sagemaker', region: 'eu-central-1', url: `http://127.0.0.1:${port}`, target: 'ep' }, sdk);
    try {
      const err = await failure(c.infer({ model: 'cls', inputs: input }, { deadline: Date.now() + 10_000 }));
      expect(err.code, err.message).toBe('PROVIDER_NETWORK');
      expect(err.retryable).toBe(true);
    } finally {
      await c.close();
      await new Promise<void>((resolve) => raw.close(() => resolve()));
    }
  });

  it('an oversize SageMaker request is refused with the 6 MB limit', async () => {
    const c = client('sagemaker-binary');
    const err = await failure(c.infer({ model: 'det', inputs: randomInput([1, 3, 800, 800]) }));
    expect(err.status).toBe(413);
    expect(err.code).toBe('PROVIDER_VALIDATION');
    await c.close();
  });

  it('overload reaches every client as a retryable PROVIDER_THROTTLED', async () => {
    const m = modelsDir();
    // The only slot is held deterministically: a split request whose tail extraction waits on a gate.
    let open: () => void = () => undefined;
    let entered: () => void = () => undefined;
    const s = await startService(m.dir, {
      maxConcurrent: 1,
      maxQueue: 0,
      extractTail: async (bytes) => {
        entered();
        await new Promise<void>((r) => { open = r; });
        return bytes;
      },
    });
    try {
      const cfgs: EndpointConfig[] = [
        { name: 'sm', kind: 'sagemaker', region: 'eu-central-1', url: s.url, target: 'ep' },
        { name: 'oip', kind: 'oip', region: 'local', url: s.url },
        { name: 'vx', kind: 'vertex', region: 'europe-west4', url: s.url, project: 'p', target: 'det', token: CREDS.vertexToken },
        { name: 'eas', kind: 'pai-eas', region: 'cn-shanghai', url: s.url, target: 'det', token: CREDS.easToken },
      ];
      const small = randomInput([1, 3, 32, 32]);
      for (const [i, cfg] of cfgs.entries()) {
        const holding = new Promise<void>((r) => { entered = r; });
        const holder = createProviderClient(cfgs[1] as EndpointConfig).infer({ model: 'det', cut: `c${i + 1}`, inputs: small });
        await holding;
        const c = createProviderClient(cfg, sdk);
        const err = await failure(c.infer({ model: 'det', inputs: small }));
        // Released before any assertion: a failing one must not leave the holder (and the test) hanging.
        open();
        expect(err.code, `${cfg.name}: ${err.message}`).toBe('PROVIDER_THROTTLED');
        expect(err.retryable).toBe(true);
        expect(err.status).toBe(429);
        // The service's `retry-after: 1`, read off the answer by each client's own transport.
        expect(err.retryAfterMs, cfg.name).toBe(1000);
        expect((await holder).outputs['sigmoid_0.tmp_0']?.dims).toEqual([1, 1, 32, 32]);
        // Once the slot is free the same client succeeds.
        expect((await c.infer({ model: 'det', inputs: small })).outputs['sigmoid_0.tmp_0']?.dims).toEqual([1, 1, 32, 32]);
        await c.close();
      }
    } finally {
      await s.drain();
      m.cleanup();
    }
  });

  it('every client carries a 429\'s and a 503\'s Retry-After (seconds, or an HTTP-date against the answer\'s Date)', async () => {
    const { createServer } = await import('node:http');
    // Answers what real fronts send when they shed load: SageMaker's error type header, Google's error body.
    const fake = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        const unavailable = (req.url ?? '').includes('unavailable') || req.headers['x-amzn-sagemaker-custom-attributes']?.toString().includes('model=unavailable') === true;
        const status = unavailable ? 503 : 429;
        const headers: Record<string, string> = unavailable
          ? { date: 'Sun, 06 Nov 1994 08:49:37 GMT', 'retry-after': 'Sun, 06 Nov 1994 08:50:07 GMT' }
          : { 'retry-after': '7' };
        headers['content-type'] = 'application/json';
        headers['x-amzn-errortype'] = `${unavailable ? 'ServiceUnavailable' : 'ThrottlingException'}:http://internal.amazon.com/coral/com.amazon.sagemaker/`;
        const body = (req.url ?? '').includes(':')
          ? { error: { code: status, message: 'shed', status: unavailable ? 'UNAVAILABLE' : 'RESOURCE_EXHAUSTED' } }
          : { code: 'SHED', message: 'shed' };
        res.writeHead(status, headers).end(JSON.stringify(body));
      });
    });
    await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(fake.address() as { port: number }).port}`;
    try {
      // The model (or the Vertex endpoint id, the EAS service) names which answer the fake gives.
      for (const [model, code, retryAfterMs] of [['throttled', 'PROVIDER_THROTTLED', 7000], ['unavailable', 'PROVIDER_UNAVAILABLE', 30_000]] as const) {
        const cfgs: EndpointConfig[] = [
          { name: 'sm', kind: 'sagemaker', region: 'eu-central-1', url, target: 'ep' },
          { name: 'vx', kind: 'vertex', region: 'europe-west4', url, project: 'p', target: model, token: CREDS.vertexToken },
          { name: 'vx-json', kind: 'vertex', region: 'europe-west4', url, project: 'p', target: model, token: CREDS.vertexToken, wire: 'json' },
          { name: 'eas', kind: 'pai-eas', region: 'cn-shanghai', url, target: model, token: CREDS.easToken },
          { name: 'oip', kind: 'oip', region: 'local', url },
        ];
        for (const cfg of cfgs) {
          const c = createProviderClient(cfg, sdk);
          try {
            const err = await failure(c.infer({ model, inputs: input }, { deadline: Date.now() + 10_000 }));
            expect(err.code, `${cfg.name}: ${err.message}`).toBe(code);
            expect(err.retryAfterMs, `${cfg.name} ${model}`).toBe(retryAfterMs);
          } finally {
            await c.close();
          }
        }
      }
    } finally {
      fake.closeAllConnections();
      await new Promise<void>((resolve) => fake.close(() => resolve()));
    }
  });

  it('a passed deadline is a retryable timeout, an abort is final, a dead port is a retryable network error', async () => {
    const c = client('eas-binary');
    const big = randomInput([1, 3, 640, 640]);
    const t = await failure(c.infer({ model: 'det', inputs: big }, { deadline: Date.now() + 5 }));
    expect(t.code).toBe('PROVIDER_TIMEOUT');
    expect(t.retryable).toBe(true);
    const ac = new AbortController();
    const p = c.infer({ model: 'det', inputs: big }, { signal: ac.signal });
    ac.abort();
    expect((await failure(p)).code).toBe('PROVIDER_ABORTED');
    const dead = createProviderClient({ name: 'dead', kind: 'oip', region: 'x', url: 'http://127.0.0.1:1' });
    const n = await failure(dead.infer({ model: 'cls', inputs: input }));
    expect(n.code).toBe('PROVIDER_NETWORK');
    expect(n.retryable).toBe(true);
  });
});
