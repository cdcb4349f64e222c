/**
 * Alibaba Cloud PAI-EAS: `POST {url}/api/predict/{service}` with the service token in the
 * `Authorization` header, or with the EAS request signature when access keys are given.
 */
import type { Agent as HttpAgent } from 'node:http';
import type { LazyValue } from '../lazy.js';
import { callScope } from './deadline.js';
import { ProviderError } from './errors.js';
import { identityFitError } from './identity/errors.js';
import { endpointAgent, post } from './http.js';
import { encodeImageRequest, encodeRequest, httpInferResponse, imageHeaders } from './payload.js';
import type { InferOptions, InferRequest, InferResponse, PaiEasEndpointConfig, ProviderClient } from './types.js';
import { easSignature } from './wire/eas.js';

export interface EasSigningKey {
  keyId: string;
  secret: string;
}

/**
 * The signing keys in `TANDEM_EAS_ACCESS_KEY_ID` / `TANDEM_EAS_ACCESS_KEY_SECRET`, when both are
 * set. For the layers that read the environment (the CLI, the config loaders); the clients
 * take their keys as an argument.
 */
export function easSigningFromEnv(env: Readonly<Record<string, string | undefined>>): EasSigningKey | undefined {
  const keyId = env['TANDEM_EAS_ACCESS_KEY_ID'];
  const secret = env['TANDEM_EAS_ACCESS_KEY_SECRET'];
  return keyId && secret ? { keyId, secret } : undefined;
}

export class PaiEasClient implements ProviderClient {
  /** The endpoint's own agent when it has a `caFile` or a proxy route; the shared ones otherwise. */
  private readonly agent: LazyValue<HttpAgent | undefined> | undefined;

  constructor(readonly endpoint: PaiEasEndpointConfig, private readonly signing?: EasSigningKey) {
    if (!endpoint.url) throw new ProviderError('PROVIDER_CONFIG', `endpoint "${endpoint.name}" (pai-eas) needs a url`);
    // EAS's request signature has no place for an STS security token: no federated identity.
    const unfit = identityFitError(endpoint.name, endpoint.kind, endpoint.identity);
    if (unfit) throw unfit;
    if (!endpoint.token && !signing) throw new ProviderError('PROVIDER_CONFIG', `endpoint "${endpoint.name}" (pai-eas) needs a token or signing keys`);
    this.agent = endpointAgent(endpoint);
  }

  async infer(request: InferRequest, options: InferOptions = {}): Promise<InferResponse> {
    const scope = callScope(options);
    try {
      // Before the clock starts: reading the caFile happens once, not per call.
      const agent = this.agent ? await this.agent.get() : undefined;
      const start = performance.now();
      const image = encodeImageRequest(request);
      const enc = image ?? encodeRequest(request, this.endpoint.wire ?? 'binary');
      const service = this.endpoint.target ?? request.model;
      const path = `/api/predict/${encodeURIComponent(service)}`;
      const headers: Record<string, string> = { 'content-type': enc.contentType, 'x-tandem-model': request.model, ...(image ? imageHeaders(request) : {}), date: new Date().toUTCString() };
      if (request.cut) headers['x-tandem-cut'] = request.cut;
      if (Number.isFinite(scope.remaining())) headers['x-tandem-deadline-ms'] = String(Math.max(1, Math.floor(scope.remaining())));
      headers['authorization'] = this.signing ? easSignature('POST', path, headers, enc.body, this.signing) : this.endpoint.token ?? '';
      const encoded = performance.now();
      const res = await post(this.endpoint.name, `${(this.endpoint.url ?? '').replace(/\/$/, '')}${path}`, headers, enc.body, scope, agent);
      return httpInferResponse(this.endpoint.name, res, enc.body.byteLength, { start, encoded, received: performance.now() }, enc.compression);
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
