/**
 * The built cloud image, run as the platforms run it. Opt-in: it needs a container engine and
 * an image (CI has neither), so it runs only when TANDEM_IMAGE names one:
 *
 *   cloud/build-image.sh --local-base
 *   TANDEM_IMAGE=localhost/tandem-cloud:latest npx vitest run test/container-image.test.ts
 *
 * The container gets the host's network (no bridge or port forwarding needed, which sandboxed
 * engines often lack) and its port from SAGEMAKER_BIND_TO_PORT, as SageMaker sets it; models are
 * mounted read-only at /opt/ml/model, where SageMaker puts them.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateReferenceModel } from '../../models/generate.js';
import { decodePayload, encodeTensorMap, TENSOR_CONTENT_TYPE } from '../../src/codec/index.js';
import { listCuts, parseModel, splitModel, type OnnxModel } from '../../src/graph/index.js';
import { createProviderClient, type EndpointConfig } from '../../src/providers/index.js';
import type { TensorMap } from '../../src/tensor/index.js';
import { CREDS, expectSameOutputs, localRun, randomInput } from '../helpers/cloud.js';
import { freePort } from '../helpers/mqtt-brokers.js';

const IMAGE = process.env['TANDEM_IMAGE'];
const ENGINE = process.env['TANDEM_CONTAINER_ENGINE'] ?? 'podman';
const run = promisify(execFile);
// The same flag lists cloud/build-image.sh reads (see there for this build machine's values).
const words = (v: string | undefined): string[] => (v ?? '').split(/\s+/).filter(Boolean);
const ENGINE_FLAGS = words(process.env['TANDEM_ENGINE_FLAGS']);
const CONTAINER_FLAGS = words(process.env['TANDEM_CONTAINER_FLAGS']);
const engine = async (...args: string[]): Promise<string> => (await run(ENGINE, [...ENGINE_FLAGS, ...args], { maxBuffer: 16 << 20 })).stdout.trim();

describe.skipIf(!IMAGE)('the cloud image', () => {
  let dir: string;
  let id = '';
  let base = '';
  let model: OnnxModel;
  let inputs: TensorMap;
  const modelBytes = generateReferenceModel({ arch: 'mobilenetv2', width: 0.5, resolution: 96, classes: 10, seed: 3 });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tandem-image-'));
    writeFileSync(join(dir, 'mnv2.onnx'), modelBytes);
    model = await parseModel(modelBytes);
    const name = listCuts(model)[0]?.tensors[0] ?? 'input';
    inputs = { [name]: randomInput([1, 3, 96, 96], 11)['x'] as TensorMap[string] };
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    id = await engine(
      'run', '-d', '--network', 'host', ...CONTAINER_FLAGS, '-v', `${dir}:/opt/ml/model:ro`,
      '-e', `SAGEMAKER_BIND_TO_PORT=${port}`,
      '-e', `AWS_ACCESS_KEY_ID=${CREDS.aws.accessKeyId}`, '-e', `AWS_SECRET_ACCESS_KEY=${CREDS.aws.secretAccessKey}`,
      '-e', `TANDEM_VERTEX_TOKEN=${CREDS.vertexToken}`, '-e', `TANDEM_EAS_TOKEN=${CREDS.easToken}`,
      IMAGE as string, 'serve',
    );
    const until = Date.now() + 60_000;
    for (;;) {
      const res = await fetch(`${base}/ping`).catch(() => undefined);
      if (res?.ok) break;
      if (Date.now() > until) throw new Error(`the container did not answer /ping:\n${await engine('logs', id).catch(String)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }, 90_000);

  afterAll(async () => {
    if (id) await engine('rm', '-f', id).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers the SageMaker container contract (/invocations) with the whole model\'s outputs', async () => {
    const res = await fetch(`${base}/invocations`, { method: 'POST', headers: { 'content-type': TENSOR_CONTENT_TYPE }, body: encodeTensorMap(inputs) });
    expect(res.status).toBe(200);
    expectSameOutputs(decodePayload(new Uint8Array(await res.arrayBuffer())).tensors, await localRun(join(dir, 'mnv2.onnx'), inputs), 1e-5);
  });

  it('runs a tail it extracts itself, through every provider client (the SageMaker and Vertex AI SDKs among them)', async () => {
    const cut = listCuts(model)[8];
    if (!cut) throw new Error('no cut');
    const { head, tail, manifest } = await splitModel(model, cut.id);
    const scratch = mkdtempSync(join(tmpdir(), 'tandem-image-split-'));
    try {
      writeFileSync(join(scratch, 'head.onnx'), head);
      writeFileSync(join(scratch, 'tail.onnx'), tail);
      const headOut = await localRun(join(scratch, 'head.onnx'), inputs);
      const tailInputs = Object.fromEntries(manifest.tail.inputs.map((n) => [n, headOut[n] ?? inputs[n]])) as TensorMap;
      const want = await localRun(join(scratch, 'tail.onnx'), tailInputs);
      const endpoints: EndpointConfig[] = [
        { name: 'oip', kind: 'oip', region: 'local', url: base },
        { name: 'sm', kind: 'sagemaker', region: 'eu-west-1', url: base, target: 'mnv2' },
        { name: 'vx', kind: 'vertex', region: 'europe-west4', url: base, project: 'p', target: 'mnv2', token: CREDS.vertexToken },
        { name: 'eas', kind: 'pai-eas', region: 'cn-shanghai', url: base, target: 'mnv2', token: CREDS.easToken },
      ];
      for (const cfg of endpoints) {
        const client = createProviderClient(cfg, { sagemaker: { credentials: CREDS.aws } });
        try {
          const res = await client.infer({ model: 'mnv2', cut: cut.id, inputs: tailInputs });
          expectSameOutputs(res.outputs, want, 1e-5);
          expect(res.timing.remoteMs).toBeGreaterThan(0);
        } finally {
          await client.close();
        }
      }
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  });

  it('drains and exits 0 on the platform\'s SIGTERM', async () => {
    await engine('stop', '-t', '30', id);
    expect(await engine('inspect', '--format', '{{.State.ExitCode}}', id)).toBe('0');
    expect(await engine('logs', id)).toMatch(/"msg":"drained"/);
  }, 60_000);
});
