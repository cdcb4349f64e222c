/**
 * An in-process ProviderClient test double: runs whole models or tails with onnxruntime-node,
 * and can be told to be down, slow or erroring, so fallback paths can be exercised.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import * as ort from 'onnxruntime-node';
import { TandemError } from '../../src/errors/index.js';
import type { EndpointConfig, InferOptions, InferRequest, InferResponse, ProviderClient } from '../../src/providers/types.js';
import type { TensorMap } from '../../src/tensor/index.js';

export type Behaviour = 'ok' | 'down' | 'error' | 'slow';

export class OrtTestClient implements ProviderClient {
  readonly endpoint: EndpointConfig;
  behaviour: Behaviour = 'ok';
  slowMs = 2000;
  calls: InferRequest[] = [];
  private readonly sessions = new Map<string, Promise<ort.InferenceSession>>();

  /** `models` maps `model` (whole) or `model@cut` (tail) to ONNX bytes or a path, or resolves such a key. */
  constructor(name: string, private readonly models: Record<string, string | Uint8Array> | ((key: string) => Promise<string | Uint8Array | undefined>)) {
    this.endpoint = { name, kind: 'oip', region: 'local', url: 'http://127.0.0.1:0' };
  }

  async infer(request: InferRequest, options: InferOptions = {}): Promise<InferResponse> {
    this.calls.push(request);
    const started = performance.now();
    if (this.behaviour === 'down') throw new TandemError('PROVIDER_NETWORK', 'connect ECONNREFUSED 127.0.0.1', { retryable: true });
    if (this.behaviour === 'error') throw new TandemError('PROVIDER_UNAVAILABLE', 'internal server error', { retryable: true });
    if (this.behaviour === 'slow') {
      try {
        await sleep(this.slowMs, undefined, options.signal ? { signal: options.signal } : {});
      } catch (error) {
        throw new TandemError('PROVIDER_ABORTED', 'request aborted', { cause: error });
      }
    }
    const key = request.cut ? `${request.model}@${request.cut}` : request.model;
    let session = this.sessions.get(key);
    if (!session) {
      const source = typeof this.models === 'function' ? await this.models(key) : this.models[key];
      if (source === undefined) throw new TandemError('PROVIDER_MODEL', `no model ${key}`);
      session = ort.InferenceSession.create(source as string);
      this.sessions.set(key, session);
    }
    const s = await session;
    const feeds: Record<string, ort.Tensor> = {};
    for (const [k, t] of Object.entries(request.inputs)) feeds[k] = new ort.Tensor(t.dtype as ort.Tensor.Type, t.data.slice() as ort.Tensor.DataType, [...t.dims]);
    const t0 = performance.now();
    const out = await s.run(feeds);
    const remoteMs = performance.now() - t0;
    const outputs: TensorMap = {};
    let bytesReceived = 0;
    for (const [k, t] of Object.entries(out)) {
      outputs[k] = { dtype: t.type as 'float32', dims: [...t.dims], data: (t.data as Float32Array).slice() };
      bytesReceived += (t.data as Float32Array).byteLength;
    }
    const bytesSent = Object.values(request.inputs).reduce((n, t) => n + t.data.byteLength, 0);
    const totalMs = performance.now() - started;
    return { outputs, timing: { encodeMs: 0, networkMs: Math.max(0, totalMs - remoteMs), remoteMs, decodeMs: 0, totalMs }, bytesSent, bytesReceived };
  }

  async close(): Promise<void> {
    for (const s of this.sessions.values()) await (await s).release();
    this.sessions.clear();
  }
}
