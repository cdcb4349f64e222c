/**
 * Prototype keys (issue #31, item 5): names from requests and policy files that are also
 * Object.prototype's (`constructor`, `toString`, `__proto__`) are names like any other — an
 * unknown data class is refused 403, never a 500, and a policy never loses a class silently.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseEdgeConfig } from '../../edge/config.js';
import { EdgeAgent } from '../../edge/edge-agent.js';
import { decodeReply, encodeRequest } from '../../edge/protocol.js';
import { TandemService, type RuntimeLike } from '../../edge/tandem-service.js';
import { PolicyError } from '../../src/residency/errors.js';
import { ResidencyGate, allowedStores, evaluateSend, evaluateWrite } from '../../src/residency/gate.js';
import { parsePolicy, validatePolicy, type Policy } from '../../src/residency/policy.js';
import { lastJsonLine, runCliInProcess } from '../helpers/cli.js';

const PROTO_NAMES = ['constructor', 'toString', '__proto__', 'hasOwnProperty', 'valueOf'];

const POLICY = [
  'version: 1',
  'classes:',
  '  eu:',
  '    store: [{ provider: local, regions: [eu-central-1] }]',
  'origins:',
  '  cam: { classes: [eu] }',
  'endpoints:',
  '  sm-eu: { provider: aws, region: eu-central-1 }',
  'stores:',
  '  local-eu: { type: local, root: /tmp/x, region: eu-central-1 }',
  '',
].join('\n');

function policyError(text: string): PolicyError {
  try {
    parsePolicy(text, 'p.yaml');
  } catch (error) {
    if (error instanceof PolicyError) return error;
    throw error;
  }
  throw new Error('expected a PolicyError');
}

describe('the gate looks up only what the policy declares', () => {
  const policy = parsePolicy(POLICY);

  it.each(PROTO_NAMES)('class %s is unknown: refused with RESIDENCY_UNKNOWN_CLASS', async (name) => {
    const gate = new ResidencyGate(policy);
    await expect(gate.allowedEndpoints(name)).rejects.toMatchObject({ code: 'RESIDENCY_UNKNOWN_CLASS' });
    await expect(gate.checkWrite(name, 'local-eu')).rejects.toMatchObject({ code: 'RESIDENCY_UNKNOWN_CLASS' });
    expect(() => allowedStores(policy, name)).toThrow(expect.objectContaining({ code: 'RESIDENCY_UNKNOWN_CLASS' }));
    await expect(gate.allowedEndpoints('eu', name)).rejects.toMatchObject({ code: 'RESIDENCY_UNKNOWN_ORIGIN' });
    expect(evaluateSend(policy, 'eu', undefined, name)).toMatchObject({ allowed: false, why: expect.stringContaining('not declared') });
    expect(evaluateWrite(policy, 'eu', undefined, name)).toMatchObject({ allowed: false, why: expect.stringContaining('not declared') });
  });

  it('keeps a class named constructor as a real entry, and refuses an origin naming an undeclared toString', () => {
    const p = parsePolicy(POLICY.replace('  eu:\n', '  constructor:\n').replace('classes: [eu]', 'classes: [constructor]'));
    expect(Object.keys(p.classes)).toEqual(['constructor']);
    expect(allowedStores(p, 'constructor', 'cam')).toEqual(['local-eu']);
    expect(policyError(POLICY.replace('classes: [eu]', 'classes: [toString]')).issues[0]).toMatchObject({ path: '$.origins.cam.classes[0]', message: 'unknown data class "toString"' });
  });
});

describe('a policy with a __proto__ class or store is refused, not loaded without it', () => {
  const protoClass = POLICY.replace('  eu:\n', '  __proto__:\n    process: []\n  eu:\n');
  const protoStore = POLICY.replace('stores:\n', 'stores:\n  __proto__: { type: local, root: /tmp/y, region: eu-central-1 }\n');

  it('in YAML, JSON and already-parsed objects, naming the path and line', () => {
    expect(policyError(protoClass).issues).toEqual([expect.objectContaining({ path: '$.classes.__proto__', line: 4 })]);
    expect(policyError(protoStore).issues).toEqual([expect.objectContaining({ path: '$.stores.__proto__', message: expect.stringContaining('__proto__') })]);
    const json = '{"version": 1, "classes": {"eu": {}, "__proto__": {}}}';
    expect(policyError(json).issues[0]).toMatchObject({ path: '$.classes.__proto__', line: 1 });
    expect(() => validatePolicy(JSON.parse(json))).toThrow(PolicyError);
  });

  it('`tandem policy check` exits 2 with RESIDENCY_POLICY_INVALID instead of printing ok', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tandem-proto-policy-'));
    try {
      const file = join(dir, 'policy.yaml');
      await writeFile(file, protoClass.replace('stores:\n', 'stores:\n  __proto__: { type: local, root: /tmp/y, region: eu-central-1 }\n'));
      const r = await runCliInProcess(['policy', 'check', file]);
      expect(r.code).toBe(2);
      expect(r.out).not.toContain('"ok":true');
      expect(r.err).toContain('RESIDENCY_POLICY_INVALID');
      expect(r.err).toContain('$.classes.__proto__');
      expect(r.err).toContain('$.stores.__proto__');
      // The same policy without them checks ok: the refusal is the key's.
      await writeFile(file, POLICY);
      const ok = await runCliInProcess(['policy', 'check', file]);
      expect(ok.code).toBe(0);
      expect(lastJsonLine(ok.out)).toMatchObject({ ok: true, classes: ['eu'], stores: ['local-eu'] });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe('the edge agent answers a prototype-named data class 403, end to end', () => {
  let agent: EdgeAgent;
  let base: string;

  beforeAll(async () => {
    const policy: Policy = parsePolicy(POLICY);
    const gate = new ResidencyGate(policy);
    const runtime: RuntimeLike = {
      model: { outputs: ['y'] },
      infer: async () => ({
        outputs: { y: { dtype: 'float32', dims: [1], data: new Float32Array([1]) } },
        plan: { kind: 'local' },
        fellBack: false,
        timing: { queueMs: 0, edgeMs: 0, encodeMs: 0, transferMs: 0, remoteMs: 0, decodeMs: 0, totalMs: 0 },
      }),
      close: async () => undefined,
    };
    // Wired as edge/service-factory.ts wires the gate and the policy.
    const service = new TandemService({
      models: [{ name: 'm', runtime }],
      residency: {
        allowedEndpoints: (dataClass, context) => gate.allowedEndpoints(dataClass, { requestId: context.requestId }),
        allowedStores: (dataClass) => allowedStores(policy, dataClass),
        storeRegion: (store) => (Object.hasOwn(policy.stores, store) ? policy.stores[store]?.region : undefined),
      },
    });
    const { config } = parseEdgeConfig(JSON.stringify({ models: [{ name: 'm', path: 'm.onnx' }], http: { port: 0 }, limits: { maxPayloadBytes: 4096, drainTimeoutMs: 5000 } }));
    agent = new EdgeAgent({ config, service, logger: pino({ level: 'silent' }) });
    await agent.start();
    base = `http://127.0.0.1:${agent.httpPort}`;
  });
  afterAll(async () => {
    await agent?.stop();
  });

  let sent = 0;
  const post = async (dataClass: string, encoding: 'json' | 'msgpack') => {
    const res = await fetch(`${base}/v1/infer`, {
      method: 'POST',
      headers: { 'content-type': `application/${encoding}` },
      body: encodeRequest({ requestId: `r${++sent}`, model: 'm', dataClass, tensors: { x: { dtype: 'float32', dims: [1], data: new Float32Array([1]) } } }, encoding),
    });
    return { status: res.status, body: decodeReply(new Uint8Array(await res.arrayBuffer()), `application/${encoding}`) };
  };

  it('a declared class is answered 200', async () => {
    expect((await post('eu', 'json')).status).toBe(200);
  });

  it.each(['constructor', 'toString', '__proto__'])('dataClass %s → 403 RESIDENCY_UNKNOWN_CLASS (JSON and msgpack)', async (dataClass) => {
    for (const encoding of ['json', 'msgpack'] as const) {
      const { status, body } = await post(dataClass, encoding);
      expect(body).toMatchObject({ ok: false, error: { code: 'RESIDENCY_UNKNOWN_CLASS' } });
      expect(status).toBe(403);
    }
  });
});
