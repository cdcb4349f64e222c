/**
 * Open Inference Protocol v2 (KServe, Triton, or `tandem cloud serve`) over HTTP, with the
 * binary tensor extension by default and plain JSON on request. The cut travels as the
 * model version (`/v2/models/NAME/versions/CUT/infer`).
 */
import type { Agent as HttpAgent } from 'node:http';
import type { LazyValue } from '../lazy.js';
import { callScope } from './deadline.js';
import { ProviderError } from './errors.js';
import { endpointAgent, post } from './http.js';
import { httpInferResponse } from './payload.js';
import type { InferOptions, InferRequest, InferResponse, OipEndpointConfig, ProviderClient } from './types.js';
import { encodeOipImageRequest, encodeOipRequest, LINK_PROBE_PATH, OIP_HEADER_LENGTH } from './wire/oip.js';

export class OipClient implements ProviderClient {
  /** The endpoint's own agent when it has a `caFile` or a proxy route; the shared ones otherwise. */
  private readonly agent: LazyValue<HttpAgent | undefined> | undefined;

  constructor(readonly endpoint: OipEndpointConfig, private readonly extraHeaders: Record<string, string> = {}) {
    if (!endpoint.url) throw new ProviderError('PROVIDER_CONFIG', `endpoint "${endpoint.name}" (oip) needs a url`);
    this.agent = endpointAgent(endpoint);
  }

  async infer(request: InferRequest, options: InferOptions = {}): Promise<InferResponse> {
    const scope = callScope(options);
    try {
      // Before the clock starts: reading the caFile happens once, not per call.
      const agent = this.agent ? await this.agent.get() : undefined;
      const start = performance.now();
      const binary = (this.endpoint.wire ?? 'binary') === 'binary';
      const id = request.requestId ? { id: request.requestId } : {};
      // Encoded offload: the image as a BYTES tensor (binary whatever the wire: JSON would base64 it).
      const enc = request.image && !request.cut ? encodeOipImageRequest(request.image, id) : encodeOipRequest(request.inputs, { binary, ...id });
      const headers: Record<string, string> = { 'content-type': enc.contentType, ...this.extraHeaders };
      if (enc.headerLength !== undefined) headers[OIP_HEADER_LENGTH] = String(enc.headerLength);
      if (Number.isFinite(scope.remaining())) headers['x-tandem-deadline-ms'] = String(Math.max(1, Math.floor(scope.remaining())));
      const base = (this.endpoint.url ?? '').replace(/\/$/, '');
      const model = encodeURIComponent(request.model);
      const url = request.cut ? `${base}/v2/models/${model}/versions/${encodeURIComponent(request.cut)}/infer` : `${base}/v2/models/${model}/infer`;
      const encoded = performance.now();
      const res = await post(this.endpoint.name, url, headers, enc.body, scope, agent);
      return httpInferResponse(this.endpoint.name, res, enc.body.byteLength, { start, encoded, received: performance.now() });
    } catch (error) {
      throw scope.classify(error, this.endpoint.name);
    } finally {
      scope.dispose();
    }
  }

  /**
   * A link probe: a body of `bytes` zero bytes to `POST /v2/tandem/link-probe`, which
   * `tandem cloud serve` reads whole and answers with 204. Other OIP servers answer 404.
   */
  async probeLink(bytes: number, options: InferOptions = {}): Promise<number> {
    const scope = callScope(options);
    try {
      const agent = this.agent ? await this.agent.get() : undefined;
      const base = (this.endpoint.url ?? '').replace(/\/$/, '');
      const start = performance.now();
      await post(this.endpoint.name, `${base}${LINK_PROBE_PATH}`, { 'content-type': 'application/octet-stream', ...this.extraHeaders }, new Uint8Array(Math.max(0, Math.floor(bytes))), scope, agent);
      return performance.now() - start;
    } catch (error) {
      throw scope.classify(error, this.endpoint.name);
    } finally {
      scope.dispose();
    }
  }

  async close(): Promise<void> {
    (await this.agent?.peek())?.destroy();
  }
}
