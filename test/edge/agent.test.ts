/**
 * The agent's config validation, HTTP front, metrics and graceful shutdown.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { EdgeConfigError, loadEdgeConfig, parseEdgeConfig } from '../../edge/config.js';
import { EdgeAgent } from '../../edge/edge-agent.js';
import { decodeReply, encodeRequest } from '../../edge/protocol.js';
import { FakeService } from '../fakes/agent-service.js';

const logger = pino({ level: 'silent' });

function configError(text: string): EdgeConfigError {
  try {
    parseEdgeConfig(text, '/etc/tandem/edge.yaml');
  } catch (error) {
    if (error instanceof EdgeConfigError) return error;
    throw error;
  }
  throw new Error('expected the config to be refused');
}

describe('edge.yaml', () => {
  it('parses a full config, fills defaults and resolves paths against the file', () => {
    const { config } = parseEdgeConfig(
      [
        'models:',
        '  - name: ppocr-det',
        '    path: models/ppocr-det',
        'endpoints:',
        '  - { name: sm-eu, kind: sagemaker, region: eu-central-1, target: tandem-eu }',
        '  - { name: eas-sh, kind: pai-eas, region: cn-shanghai, url: "http://127.0.0.1:9000", target: ocr }',
        'residency: { policy: policies/eu.yaml }',
        'outbox: { dir: /var/lib/tandem/outbox }',
        'mqtt:',
        '  url: mqtts://abc-ats.iot.eu-central-1.amazonaws.com:8883',
        '  thingName: camera-7',
        '  tls: { cert: certs/device.pem.crt, key: certs/private.pem.key, ca: certs/AmazonRootCA1.pem }',
        'http: { port: 0 }',
        'planner: { objective: latency }',
      ].join('\n'),
      '/etc/tandem/edge.yaml',
    );
    expect(config.models[0]?.path).toBe('/etc/tandem/models/ppocr-det');
    expect(config.residency?.policy).toBe('/etc/tandem/policies/eu.yaml');
    expect(config.outbox.dir).toBe('/var/lib/tandem/outbox');
    expect(config.mqtt?.tls?.cert).toBe('/etc/tandem/certs/device.pem.crt');
    expect(config.mqtt?.topics).toEqual({ request: 'tandem/{thingName}/infer', results: 'tandem/{thingName}/results' });
    expect(config.mqtt?.protocolVersion).toBe(5);
    expect(config.limits.maxPayloadBytes).toBe(8 * 1024 * 1024);
    expect(config.endpoints[1]?.kind).toBe('pai-eas');
    expect(config.planner).toEqual({ objective: 'latency' });
  });

  it('takes caFile on any endpoint kind, relative to the file like every other path', () => {
    const { config } = parseEdgeConfig(
      [
        'models: [{ name: a, path: a.onnx }]',
        'endpoints:',
        '  - { name: oip, kind: oip, region: local, url: "https://10.0.0.7:8443", caFile: certs/private-ca.pem }',
        '  - { name: vx, kind: vertex, region: europe-west4, project: p, target: "1", transport: grpc, caFile: /etc/ssl/vertex-ca.pem }',
        '  - { name: sm, kind: sagemaker, region: eu-central-1, target: ep }',
        'http: {}',
      ].join('\n'),
      '/etc/tandem/edge.yaml',
    );
    expect(config.endpoints.map((e) => e.caFile)).toEqual(['/etc/tandem/certs/private-ca.pem', '/etc/ssl/vertex-ca.pem', undefined]);
    const empty = configError('models: [{ name: a, path: a.onnx }]\nendpoints: [{ name: o, kind: oip, region: r, url: "https://h", caFile: "" }]\nhttp: {}\n');
    expect(empty.issues[0]).toMatchObject({ path: 'endpoints[0].caFile', line: 2 });
  });

  it('takes wire (binary | json) on an endpoint of any kind, and refuses other values', () => {
    const { config } = parseEdgeConfig(
      [
        'models: [{ name: a, path: a.onnx }]',
        'endpoints:',
        '  - { name: oip, kind: oip, region: local, url: "http://127.0.0.1:8080", wire: json }',
        '  - { name: sm, kind: sagemaker, region: eu-central-1, target: ep, wire: binary }',
        '  - { name: eas, kind: pai-eas, region: cn-shanghai, url: "http://127.0.0.1:8081" }',
        'http: {}',
      ].join('\n'),
      '/etc/tandem/edge.yaml',
    );
    expect(config.endpoints.map((e) => e.wire)).toEqual(['json', 'binary', undefined]);
    const bad = configError('models: [{ name: a, path: a.onnx }]\nendpoints: [{ name: o, kind: oip, region: r, url: "http://h", wire: protobuf }]\nhttp: {}\n');
    expect(bad.code).toBe('EDGE_CONFIG_INVALID');
    expect(bad.issues[0]).toMatchObject({ path: 'endpoints[0].wire', line: 2 });
  });

  it('points at the key path and line of each problem', () => {
    const error = configError(
      ['models:', '  - name: det', '    path: det.onnx', 'endpoints:', '  - name: sm', '    kind: sagemakr', '    region: eu-west-1', 'http:', '  port: 99999'].join('\n'),
    );
    expect(error.code).toBe('EDGE_CONFIG_INVALID');
    const byPath = Object.fromEntries(error.issues.map((i) => [i.path, i]));
    expect(byPath['endpoints[0].kind']?.line).toBe(6);
    expect(byPath['http.port']?.line).toBe(9);
    expect(error.message).toContain('endpoints[0].kind (line 6)');
  });

  it('refuses unknown keys, missing fronts, duplicate names and bad YAML', () => {
    const typo = configError('models: [{ name: a, path: a.onnx }]\nhttp: { prot: 80 }\n');
    expect(typo.issues[0]).toMatchObject({ path: 'http', line: 2 });
    expect(typo.issues[0]?.message).toMatch(/prot/);
    expect(configError('models: [{ name: a, path: a.onnx }]\n').issues[0]?.message).toMatch(/at least one front/);
    const dup = configError('models: [{ name: a, path: a.onnx }, { name: a, path: b.onnx }]\nhttp: {}\n');
    expect(dup.issues[0]).toMatchObject({ path: 'models[1].name' });
    const yaml = configError('models:\n  - name: a\n   path: x\n');
    expect(yaml.issues[0]?.line).toBeGreaterThan(0);
    const eas = configError('models: [{ name: a, path: a.onnx }]\nendpoints: [{ name: e, kind: pai-eas, region: cn-shanghai }]\nhttp: {}\n');
    expect(eas.issues[0]).toMatchObject({ path: 'endpoints[0].url', line: 2 });
  });

  it('reports an unreadable file as a config error', async () => {
    await expect(loadEdgeConfig('/nonexistent/edge.yaml')).rejects.toMatchObject({ code: 'EDGE_CONFIG_INVALID' });
    const dir = await mkdtemp(join(tmpdir(), 'tandem-cfg-'));
    await writeFile(join(dir, 'edge.yaml'), 'models: [{ name: a, path: a.onnx }]\nhttp: { port: 0 }\n');
    await expect(loadEdgeConfig(join(dir, 'edge.yaml'))).resolves.toMatchObject({ config: { http: { port: 0, host: '127.0.0.1' } } });
  });
});

describe('HTTP front', () => {
  const agents: EdgeAgent[] = [];
  afterEach(async () => {
    for (const a of agents.splice(0)) await a.stop();
  });

  async function start(service = new FakeService(), maxPayloadBytes = 4096): Promise<{ base: string; agent: EdgeAgent; service: FakeService }> {
    const { config } = parseEdgeConfig(JSON.stringify({ models: [{ name: 'sum', path: 's.onnx' }], http: { port: 0 }, limits: { maxPayloadBytes, drainTimeoutMs: 5000 } }));
    const agent = new EdgeAgent({ config, service, logger });
    await agent.start();
    agents.push(agent);
    return { base: `http://127.0.0.1:${agent.httpPort}`, agent, service };
  }

  it('runs POST /v1/infer in JSON and msgpack', async () => {
    const { base } = await start();
    const json = await fetch(`${base}/v1/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: encodeRequest({ requestId: 'h1', model: 'sum', tensors: { x: { dtype: 'int32', dims: [3], data: new Int32Array([1, 2, 3]) } } }, 'json'),
    });
    expect(json.status).toBe(200);
    expect(await json.json()).toMatchObject({ requestId: 'h1', ok: true, result: { sum: 6 }, planLabel: 'local' });
    const packed = await fetch(`${base}/v1/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/msgpack' },
      body: encodeRequest({ requestId: 'h2', model: 'sum', image: new Uint8Array([7, 8]), includeOutputs: true }, 'msgpack'),
    });
    expect(packed.status).toBe(200);
    expect(packed.headers.get('content-type')).toBe('application/msgpack');
    const body = decodeReply(new Uint8Array(await packed.arrayBuffer()), 'application/msgpack');
    expect(body).toMatchObject({ requestId: 'h2', ok: true });
    const out = (body as { outputs: Record<string, { data: Uint8Array }> }).outputs['sum'];
    expect(new Float32Array(new Uint8Array(out?.data ?? []).buffer)[0]).toBe(15);
  });

  it('maps failures to status codes: 400 malformed, 404 unknown model, 403 residency, 413 oversize', async () => {
    const { base } = await start();
    const post = (body: Buffer | string) => fetch(`${base}/v1/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    const bad = await post('{"model": "sum"}');
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ ok: false, error: { code: 'MESSAGE_MALFORMED' } });
    const unknown = await post(encodeRequest({ requestId: 'u', model: 'nope', image: new Uint8Array([1]) }, 'json'));
    expect(unknown.status).toBe(404);
    const refused = await post(encodeRequest({ requestId: 'f', model: 'sum', dataClass: 'forbidden', image: new Uint8Array([1]) }, 'json'));
    expect(refused.status).toBe(403);
    const big = await post(encodeRequest({ requestId: 'b', model: 'sum', image: new Uint8Array(8192) }, 'json'));
    expect(big.status).toBe(413);
    expect(await big.json()).toMatchObject({ ok: false, error: { code: 'PAYLOAD_TOO_LARGE' } });
    expect((await fetch(`${base}/v1/infer`)).status).toBe(405);
    expect((await fetch(`${base}/nothing`)).status).toBe(404);
  });

  it('serves /healthz and Prometheus /metrics with latency by plan, fallbacks, refusals and outbox depth', async () => {
    const { base, service } = await start();
    service.plan = { kind: 'split', cut: 'c3', endpoint: 'sm-eu' };
    const post = (body: Buffer) => fetch(`${base}/v1/infer`, { method: 'POST', body });
    await post(encodeRequest({ requestId: 'm1', model: 'sum', image: new Uint8Array([1]) }, 'json'));
    await post(encodeRequest({ requestId: 'm2', model: 'sum', dataClass: 'forbidden', image: new Uint8Array([1]) }, 'json'));
    const health = await fetch(`${base}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ ok: true, draining: false, outboxDepth: 1, models: ['sum'] });
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/tandem_request_duration_seconds_count\{plan_kind="split",plan="split@c3→sm-eu"\} 1/);
    expect(metrics).toMatch(/tandem_residency_refusals_total\{data_class="forbidden"\} 1/);
    expect(metrics).toMatch(/tandem_outbox_depth 1/);
    expect(metrics).toMatch(/tandem_requests_total\{front="http",outcome="ok"\} 1/);
  });

  it('answers a redelivered request id from the reply cache without running it again', async () => {
    const { base, service } = await start();
    const body = encodeRequest({ requestId: 'same', model: 'sum', image: new Uint8Array([3]) }, 'json');
    const [a, b] = await Promise.all([fetch(`${base}/v1/infer`, { method: 'POST', body }), fetch(`${base}/v1/infer`, { method: 'POST', body })]);
    const c = await fetch(`${base}/v1/infer`, { method: 'POST', body });
    for (const r of [a, b, c]) expect(await r.json()).toMatchObject({ requestId: 'same', ok: true, result: { sum: 3 } });
    expect(service.calls).toHaveLength(1);
  });

  it('drains in-flight requests and flushes the outbox on stop, refusing new work meanwhile', async () => {
    const service = new FakeService();
    service.delayMs = 400;
    const { base, agent } = await start(service);
    const inflight = fetch(`${base}/v1/infer`, { method: 'POST', body: encodeRequest({ requestId: 'slow', model: 'sum', image: new Uint8Array([9]) }, 'json') });
    await new Promise((r) => setTimeout(r, 100));
    expect(agent.core.inFlight).toBe(1);
    const stopping = agents.splice(0)[0]?.stop();
    await new Promise((r) => setTimeout(r, 20));
    const health = await fetch(`${base}/healthz`);
    expect(health.status).toBe(503);
    const refused = await fetch(`${base}/v1/infer`, { method: 'POST', body: encodeRequest({ requestId: 'late', model: 'sum', image: new Uint8Array([1]) }, 'json') });
    expect(refused.status).toBe(503);
    expect(await refused.json()).toMatchObject({ ok: false, error: { code: 'AGENT_DRAINING', retryable: true } });
    const done = await inflight;
    expect(await done.json()).toMatchObject({ requestId: 'slow', ok: true });
    expect(await stopping).toEqual({ drained: true, flushed: true });
    expect(service.flushed).toBe(1);
    expect(service.closed).toBe(true);
  });
});
