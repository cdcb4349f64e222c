import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CloudService } from '../../cloud/server.js';
import { generateReferenceModel } from '../../models/generate.js';
import { listCuts, parseModel, splitModel } from '../../src/graph/index.js';
import { createProviderClient, type EndpointConfig } from '../../src/providers/index.js';
import type { TensorMap } from '../../src/tensor/index.js';
import { CREDS, expectSameOutputs, randomInput, startService } from '../helpers/cloud.js';

let svc: CloudService;
let dir: string;
let modelBytes: Uint8Array;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tandem-split-'));
  modelBytes = generateReferenceModel({ arch: 'mobilenetv2', width: 0.5, resolution: 96, classes: 10, seed: 3 });
  writeFileSync(join(dir, 'mnv2.onnx'), modelBytes);
  svc = await startService(dir);
});
afterAll(async () => {
  await svc.drain();
  rmSync(dir, { recursive: true, force: true });
});

/** A deterministic image batch under the model's real input name. */
async function modelInput(seed: number): Promise<TensorMap> {
  const first = listCuts(await parseModel(modelBytes))[0];
  const name = first?.tensors[0] ?? 'input';
  const x = randomInput([1, 3, 96, 96], seed)['x'];
  if (!x) throw new Error('input');
  return { [name]: x };
}

async function run(onnx: Uint8Array, feeds: TensorMap): Promise<TensorMap> {
  const session = await ort.InferenceSession.create(onnx);
  try {
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const name of session.inputNames) {
      const t = feeds[name];
      if (!t) throw new Error(`missing ${name}`);
      ortFeeds[name] = new ort.Tensor(t.dtype, t.data as Float32Array, t.dims as number[]);
    }
    const out = await session.run(ortFeeds);
    return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, { dtype: 'float32', dims: [...v.dims], data: v.data as Float32Array }]));
  } finally {
    await session.release();
  }
}

const endpoints = (): EndpointConfig[] => [
  { name: 'sm', kind: 'sagemaker', region: 'eu-west-1', url: svc.url, target: 'ep' },
  { name: 'vx', kind: 'vertex', region: 'europe-west4', url: svc.url, project: 'p', target: 'mnv2', token: CREDS.vertexToken },
  { name: 'vx-json', kind: 'vertex', region: 'europe-west4', url: svc.url, project: 'p', target: 'mnv2', token: CREDS.vertexToken, wire: 'json' },
  { name: 'eas', kind: 'pai-eas', region: 'cn-shanghai', url: svc.url, target: 'mnv2', token: CREDS.easToken },
  { name: 'oip', kind: 'oip', region: 'local', url: svc.url },
  { name: 'oip-json', kind: 'oip', region: 'local', url: svc.url, wire: 'json' },
];

describe('split inference: head on the edge, tail extracted and run by the service', () => {
  it('every client gets the whole model\'s outputs for early, middle and late cuts (single- and multi-tensor)', async () => {
    const model = await parseModel(modelBytes);
    const cuts = listCuts(model);
    const inner = cuts.slice(1, -1);
    const multi = inner.find((c) => c.tensors.length > 1);
    const picks = [inner[1], inner[Math.floor(inner.length / 2)], inner[inner.length - 2], multi].filter((c): c is NonNullable<typeof c> => c !== undefined);
    expect(multi, 'MobileNetV2 residual blocks give multi-tensor cuts').toBeDefined();
    expect(picks.length).toBe(4);
    const input = await modelInput(21);
    const whole = await run(modelBytes, input);
    for (const cut of picks) {
      const { head, tail, manifest } = await splitModel(model, cut.id);
      const headOut = await run(head, input);
      const tailInputs: TensorMap = {};
      for (const name of manifest.tail.inputs) {
        const t = headOut[name] ?? input[name];
        if (!t) throw new Error(`no value for tail input ${name}`);
        tailInputs[name] = t;
      }
      const bareTail = await run(tail, tailInputs);
      for (const cfg of endpoints()) {
        const client = createProviderClient(cfg, { sagemaker: { credentials: CREDS.aws } });
        try {
          const res = await client.infer({ model: 'mnv2', cut: cut.id, inputs: tailInputs });
          expectSameOutputs(res.outputs, bareTail, 1e-5);
          expectSameOutputs(res.outputs, whole, 1e-4);
          expect(res.timing.remoteMs).toBeGreaterThan(0);
        } finally {
          await client.close();
        }
      }
    }
    const metrics = await (await fetch(`${svc.url}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`tandem_cloud_compute_duration_seconds_count\\{model="mnv2",cut="${picks[0]?.id}"\\}`));
  });

  it('int8 compression of the cut tensors stays close to the whole model', async () => {
    const model = await parseModel(modelBytes);
    const cut = listCuts(model)[6];
    if (!cut) throw new Error('no cut');
    const { head, manifest } = await splitModel(model, cut.id);
    const input = await modelInput(5);
    const headOut = await run(head, input);
    const tailInputs: TensorMap = Object.fromEntries(manifest.tail.inputs.map((n) => [n, headOut[n] ?? input[n]])) as TensorMap;
    const client = createProviderClient({ name: 'oip', kind: 'pai-eas', region: 'x', url: svc.url, target: 'mnv2', token: CREDS.easToken });
    const res = await client.infer({ model: 'mnv2', cut: cut.id, inputs: tailInputs, compression: 'int8' });
    const whole = await run(modelBytes, input);
    const got = res.outputs[Object.keys(whole)[0] ?? ''];
    const want = whole[Object.keys(whole)[0] ?? ''];
    expect(got?.dims).toEqual(want?.dims);
    let maxErr = 0;
    let scale = 0;
    (want?.data as Float32Array).forEach((v, i) => {
      scale = Math.max(scale, Math.abs(v));
      maxErr = Math.max(maxErr, Math.abs(v - ((got?.data as Float32Array)[i] ?? NaN)));
    });
    expect(maxErr / scale).toBeLessThan(0.1);
  });

  it('an unknown cut is a 404 naming the cut; a cut of the wrong tensors is a 400', async () => {
    const res = await fetch(`${svc.url}/v2/models/mnv2/versions/c99999/infer`, { method: 'POST', body: JSON.stringify({ inputs: [{ name: 'x', shape: [1], datatype: 'FP32', data: [1] }] }) });
    expect(res.status).toBe(404);
    expect(((await res.json()) as { message: string }).message).toMatch(/c99999/);
    const model = await parseModel(modelBytes);
    const cut = listCuts(model)[4];
    const bad = await fetch(`${svc.url}/v2/models/mnv2/versions/${cut?.id}/infer`, { method: 'POST', body: JSON.stringify({ inputs: [{ name: 'x', shape: [1], datatype: 'FP32', data: [1] }] }) });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { message: string }).message).toMatch(/needs input/);
  });
});

describe('the tail cache is bounded', () => {
  it('keeps at most maxPartitions loaded, refused requests included, and reloads an evicted tail with the same outputs', async () => {
    const bounded = await startService(dir, { maxPartitions: 2 });
    try {
      const model = await parseModel(modelBytes);
      const cuts = listCuts(model).slice(2, 8);
      // Refused requests (a bogus input) still make the service extract the tail they name.
      for (const cut of cuts) {
        const res = await fetch(`${bounded.url}/v2/models/mnv2/versions/${cut.id}/infer`, { method: 'POST', body: JSON.stringify({ inputs: [{ name: 'bogus', shape: [1], datatype: 'FP32', data: [1] }] }) });
        expect(res.status).toBe(400);
        expect(bounded.models.loaded).toBeLessThanOrEqual(2);
      }
      const first = cuts[0];
      if (!first) throw new Error('no cut');
      const { head, tail, manifest } = await splitModel(model, first.id);
      const input = await modelInput(8);
      const headOut = await run(head, input);
      const tailInputs: TensorMap = Object.fromEntries(manifest.tail.inputs.map((n) => [n, headOut[n] ?? input[n]])) as TensorMap;
      const client = createProviderClient({ name: 'oip', kind: 'oip', region: 'local', url: bounded.url });
      try {
        // c-first was evicted long ago: it is extracted and loaded again, and answers the same.
        const res = await client.infer({ model: 'mnv2', cut: first.id, inputs: tailInputs });
        expectSameOutputs(res.outputs, await run(tail, tailInputs), 1e-5);
      } finally {
        await client.close();
      }
      expect(bounded.models.loaded).toBeLessThanOrEqual(2);
    } finally {
      await bounded.drain();
    }
  });
});
