/**
 * Live model updates: a new package version swapped in under a steady request stream, with
 * no request failed; a corrupt version refused while the old one keeps answering.
 */
import { mkdir, mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseEdgeConfig } from '../../edge/config.js';
import type { ModelUpdateEvent } from '../../edge/model-updates.js';
import { createServiceFromConfig } from '../../edge/service-factory.js';
import type { InferenceService } from '../../edge/service.js';
import { TandemService, type RuntimeLike, type ServedModel } from '../../edge/tandem-service.js';
import { createPackage } from '../../src/package/index.js';
import { encode } from '../fixtures/graphs.js';

const { onnx } = onnxProto;
const FLOAT = onnx.TensorProto.DataType.FLOAT;

/** y = x + offset: the offset tells which version answered. */
function offsetModel(offset: number): Uint8Array {
  const io = (name: string): onnxProto.onnx.IValueInfoProto => ({ name, type: { tensorType: { elemType: FLOAT, shape: { dim: [{ dimValue: 1 }, { dimValue: 4 }] } } } });
  return encode({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 13 }],
    graph: {
      name: 'offset',
      node: [{ opType: 'Add', input: ['x', 'c'], output: ['y'] }],
      initializer: [{ name: 'c', dims: [1], dataType: FLOAT, rawData: new Uint8Array(new Float32Array([offset]).buffer) }],
      input: [io('x')],
      output: [io('y')],
    },
  });
}

let root: string;

/** Writes version `offset` as a package in its own folder, as an updater would. */
async function writeVersion(name: string, offset: number): Promise<string> {
  const onnxFile = join(root, `${name}.onnx`);
  await writeFile(onnxFile, offsetModel(offset));
  const dir = join(root, 'versions', name);
  await createPackage({ model: onnxFile, out: dir, name: 'offset' });
  return dir;
}

/** Points `current` at `dir` atomically (a new link renamed over the old one). */
async function publish(dir: string): Promise<void> {
  const tmp = join(root, `current.${Date.now()}`);
  await symlink(dir, tmp);
  await rename(tmp, join(root, 'current'));
}

async function ask(service: InferenceService, i: number): Promise<number> {
  const x = new Float32Array([i, i, i, i]);
  const result = await service.infer({ requestId: `r${i}`, model: 'offset', input: { kind: 'tensors', tensors: { x: { dtype: 'float32', dims: [1, 4], data: x } } } });
  const y = result.outputs['y']?.data as Float32Array;
  return Math.round(y[0]! - i);
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'tandem-updates-'));
  await mkdir(join(root, 'versions'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('live model updates', () => {
  it('switches to a new version under load with no failed request, and refuses a corrupt one while the old keeps answering', async () => {
    await publish(await writeVersion('v1', 1));
    const { config } = parseEdgeConfig(JSON.stringify({ models: [{ name: 'offset', path: join(root, 'current'), workers: 1, watch: { pollMs: 50 } }], http: { port: 0 } }));
    const events: ModelUpdateEvent[] = [];
    const { service } = await createServiceFromConfig(config, { logger: pino({ level: 'silent' }), onModelUpdate: (e) => events.push(e) });
    const waitFor = async (n: number): Promise<void> => {
      for (let t = 0; events.length < n && t < 300; t++) await new Promise((r) => setTimeout(r, 50));
    };
    try {
      expect(await ask(service, 0)).toBe(1);
      // A steady stream, 4 requests at a time, while version 2 is published.
      const answers: number[] = [];
      let stop = false;
      let i = 1;
      const stream = Promise.all(
        Array.from({ length: 4 }, async () => {
          // Kept in send order: a request sent before the switch may finish after later ones.
          while (!stop) {
            const n = i++;
            answers[n - 1] = await ask(service, n);
          }
        }),
      );
      await new Promise((r) => setTimeout(r, 100));
      await publish(await writeVersion('v2', 2));
      await waitFor(1);
      await new Promise((r) => setTimeout(r, 100));
      stop = true;
      await stream; // rejects if any request failed
      expect(events[0]).toMatchObject({ model: 'offset', outcome: 'applied', path: join(root, 'versions', 'v2') });
      expect(answers.filter((a) => a !== 1 && a !== 2)).toEqual([]);
      expect(answers.at(-1)).toBe(2);
      // Once switched, never back: in send order the answers are 1s then 2s (4 requests ran at once at the switch).
      const firstTwo = answers.indexOf(2);
      expect(answers.slice(firstTwo + 4).every((a) => a === 2)).toBe(true);
      expect(service.health().details).toEqual({ models: { offset: events[0]!.to } });

      // Version 3's model does not match its manifest: refused, version 2 keeps serving.
      const v3 = await writeVersion('v3', 3);
      await writeFile(join(v3, 'model.onnx'), offsetModel(30));
      await publish(v3);
      await waitFor(2);
      expect(events[1]).toMatchObject({ model: 'offset', outcome: 'refused', code: 'RUNTIME_PACKAGE_SHA256' });
      expect(await ask(service, 100)).toBe(2);
    } finally {
      await service.close();
    }
  }, 60_000);
});

/** A runtime that answers `version` and records when it is closed. */
function fakeVersion(version: number, log: string[]): ServedModel {
  let closed = false;
  const runtime: RuntimeLike = {
    model: { outputs: ['y'], sha256: `v${version}` },
    infer: async () => {
      if (closed) throw new Error(`v${version} used after close`);
      return {
        outputs: { y: { dtype: 'float32', dims: [1], data: new Float32Array([version]) } },
        plan: { kind: 'local' },
        fellBack: false,
        timing: { queueMs: 0, edgeMs: 0, encodeMs: 0, transferMs: 0, remoteMs: 0, decodeMs: 0, totalMs: 0 },
      };
    },
    close: async () => {
      closed = true;
      log.push(`close v${version}`);
    },
  };
  return { name: 'm', runtime };
}

describe('TandemService.replaceModel', () => {
  it('lets a request that started on the old version finish on it, and closes the old version only then', async () => {
    const log: string[] = [];
    let admit!: () => void;
    const admitted = new Promise<void>((r) => (admit = r));
    const service = new TandemService({
      models: [fakeVersion(1, log)],
      // The residency check is where a request waits before reaching the runtime.
      residency: { allowedEndpoints: async () => (await admitted, []), allowedStores: () => ['s'], storeRegion: () => undefined },
    });
    const request = { requestId: 'a', model: 'm', dataClass: 'c', input: { kind: 'tensors' as const, tensors: {} } };
    const first = service.infer(request);
    const replaced = service.replaceModel(fakeVersion(2, log));
    await new Promise((r) => setTimeout(r, 20));
    expect(log).toEqual([]);
    expect(service.servedVersion('m')).toBe('v2');
    admit();
    expect((await first).outputs['y']?.data).toEqual(new Float32Array([1]));
    await replaced;
    expect(log).toEqual(['close v1']);
    expect((await service.infer({ ...request, requestId: 'b' })).outputs['y']?.data).toEqual(new Float32Array([2]));
    await service.close();
    expect(log).toEqual(['close v1', 'close v2']);
  });
});
