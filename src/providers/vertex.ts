/**
 * Google Vertex AI endpoints through `@google-cloud/aiplatform` 6.x PredictionServiceClient:
 * `rawPredict` with a Tandem msgpack body (default), or `predict` with JSON `instances`.
 * Credentials come from Application Default Credentials (workload identity federation
 * included) unless the endpoint carries a static token, with which it never asks the
 * metadata server for anything. The transport is the SDK's gRPC, or its REST fallback
 * (`EndpointConfig.transport`; REST by default with a URL override, as before).
 */
import type { Agent as HttpsAgent } from 'node:https';
import type { v1, protos } from '@google-cloud/aiplatform';
import type { CallOptions, ClientOptions } from 'google-gax';
import { LazyValue } from '../lazy.js';
import type { DType } from '../tensor/index.js';
import { readCaFile } from './ca.js';
import { callScope, raceAbort } from './deadline.js';
import { causeChain, credentialError, errorForStatus, MAX_RETRY_AFTER_MS, ProviderError, retryAfterOf, tlsError } from './errors.js';
import { httpsAgentTrusting, MAX_ANSWER_BYTES } from './http.js';
import { identityFitError } from './identity/errors.js';
import { gcpIdentityError, readExternalAccountConfig, routeTokenExchange, type ExchangeAdapter } from './identity/gcp.js';
import { gaxiosAdapterOnRoute, proxyFailure, ProxyRoute } from './proxy.js';
import { decodeResponse, encodeImageRequest, encodeRequest, imageHeaders, timing } from './payload.js';
import type { InferOptions, InferRequest, InferResponse, ProviderClient, VertexEndpointConfig } from './types.js';
import { grpcCredentialsTrusting, grpcProxyFailure, grpcProxyOptions, restAnswerCap, trustingAdapter, type GaxiosOptions } from './vertex-transport.js';
import { predictionsToTensors, tensorsToInstances, toProtoValue, VERTEX_MAX_MESSAGE_BYTES } from './wire/vertex.js';

export { restAnswerCap, trustingAdapter } from './vertex-transport.js';

type ProtoValue = protos.google.protobuf.IValue;

// Loaded by the first Vertex call (the AI Platform SDK alone costs over a second to import), so
// that importing Tandem does not pay for it.
const aiplatformSdk = new LazyValue<typeof import('@google-cloud/aiplatform')>(() => import('@google-cloud/aiplatform'));
const gaxSdk = new LazyValue<typeof import('google-gax')>(() => import('google-gax'));

function fromValue(v: ProtoValue | null | undefined): unknown {
  if (!v) return null;
  if (v.numberValue !== undefined && v.numberValue !== null) return v.numberValue;
  if (v.boolValue !== undefined && v.boolValue !== null) return v.boolValue;
  if (v.stringValue !== undefined && v.stringValue !== null) return v.stringValue;
  if (v.listValue) return (v.listValue.values ?? []).map(fromValue);
  if (v.structValue) return Object.fromEntries(Object.entries(v.structValue.fields ?? {}).map(([k, x]) => [k, fromValue(x)]));
  return null;
}

/** The answer cap's refusal among the causes of what the SDK threw, if it is one. */
function capRefusal(error: unknown): ProviderError | undefined {
  for (const e of causeChain(error)) if (e instanceof ProviderError) return e;
  return undefined;
}

/** gRPC status codes the SDK reports, mapped to the HTTP statuses they stand for. */
const GRPC_TO_HTTP: Record<number, number> = { 2: 500, 3: 400, 4: 504, 5: 404, 7: 403, 8: 429, 9: 400, 11: 400, 12: 501, 13: 500, 14: 503, 16: 401 };
const RESOURCE_EXHAUSTED = 8;
/**
 * grpc-js's refusals of a message over the size limit, on either side: it reports them as
 * RESOURCE_EXHAUSTED, which is not the endpoint asking for a pause.
 */
const MESSAGE_SIZE_RE = /message larger than max|message with a size larger than|decompresses to a size larger than/i;
const RECEIVED_RE = /^\d+ RESOURCE_EXHAUSTED: Received message/;

/**
 * Whether a status came from this client's own gRPC stack rather than from the server: grpc-js
 * gives its local cancellations empty metadata, while a server's status carries its trailers.
 */
function locallyRaised(error: unknown): boolean {
  const metadata = (error as { metadata?: { getMap?: unknown } } | null)?.metadata;
  return typeof metadata?.getMap === 'function' && Object.keys(metadata.getMap.call(metadata) as object).length === 0;
}

/** The google.rpc.ErrorInfo reason in a REST error body (`{"error": {"details": [...]}}`) given as text, if any. */
function errorInfoReason(text: string): string | undefined {
  if (!text.startsWith('{')) return undefined;
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return undefined;
  }
  const details = (body as { error?: { details?: unknown } } | null)?.error?.details;
  if (!Array.isArray(details)) return undefined;
  for (const d of details) {
    const reason = (d as { reason?: unknown } | null)?.reason;
    if (typeof reason === 'string') return reason;
  }
  return undefined;
}

function statusOf(error: unknown): { status: number | undefined; code: string | undefined } {
  if (!(error instanceof Error)) return { status: undefined, code: undefined };
  const e = error as Error & { code?: unknown; status?: unknown; reason?: unknown; response?: { status?: unknown } };
  if (typeof e.code === 'number') {
    // gax REST errors carry the HTTP status in `code` for some paths and the gRPC code in others.
    const status = e.code >= 100 ? e.code : GRPC_TO_HTTP[e.code];
    // google.rpc.ErrorInfo's reason (the service's stable code) says more than the gRPC status.
    // gRPC errors carry it as `reason`; gax's REST errors keep the error body as their message.
    const reason = typeof e.reason === 'string' ? e.reason : errorInfoReason(e.message);
    return { status, code: reason ?? (typeof e.status === 'string' ? e.status : undefined) };
  }
  if (typeof e.response?.status === 'number') return { status: e.response.status, code: errorInfoReason(e.message) };
  return { status: undefined, code: undefined };
}

/** Seconds of a google.protobuf.Duration field: a number, int64 as a string, or a Long. */
function durationSeconds(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'string' && /^\d+$/.test(v)) return Number(v);
  const toNumber = (v as { toNumber?: unknown } | null)?.toNumber;
  return typeof toNumber === 'function' ? Number(toNumber.call(v)) : NaN;
}

/**
 * The wait a google.rpc.RetryInfo among a gax error's decoded `statusDetails` asks for, ms
 * (where Google's fronts put it on gRPC, and in the REST error body), cut to an hour; undefined
 * when there is none or it is malformed.
 */
export function retryInfoOf(error: unknown): number | undefined {
  const details = (error as { statusDetails?: unknown } | null)?.statusDetails;
  if (!Array.isArray(details)) return undefined;
  for (const d of details) {
    const delay = (d as { retryDelay?: unknown } | null)?.retryDelay;
    if (delay === null || typeof delay !== 'object') continue;
    const { seconds, nanos } = delay as { seconds?: unknown; nanos?: unknown };
    const ms = durationSeconds(seconds ?? 0) * 1000 + (typeof nanos === 'number' ? nanos : 0) / 1e6;
    return Number.isFinite(ms) && ms >= 0 ? Math.min(ms, MAX_RETRY_AFTER_MS) : undefined;
  }
  return undefined;
}

/**
 * The ProviderError for a Vertex call that the endpoint (or the transport on its behalf)
 * answered with a status, or undefined when there was no answer to classify.
 */
export function vertexAnswerError(endpoint: string, error: unknown): ProviderError | undefined {
  if (error instanceof ProviderError) return undefined;
  const { status, code } = statusOf(error);
  if (status === undefined) return undefined;
  const message = error instanceof Error ? error.message : String(error);
  if ((error as { code?: unknown }).code === RESOURCE_EXHAUSTED && MESSAGE_SIZE_RE.test(message)) {
    // An answer over this client's receive limit: the endpoint's, not the request's.
    if (RECEIVED_RE.test(message) && locallyRaised(error)) {
      return new ProviderError('PROVIDER_RESPONSE', `endpoint "${endpoint}" sent an answer over this client's gRPC message limit: ${message}`, { cause: error, details: { endpoint } });
    }
    return new ProviderError('PROVIDER_VALIDATION', `endpoint "${endpoint}": the request is over the gRPC message limit (Vertex AI takes at most 10 MB a request, 1.5 MB on shared public endpoints): ${message}`, { cause: error, status: 413, details: { endpoint } });
  }
  // The REST transport's errors are gaxios's, which keep the answer, headers included; gRPC
  // errors keep the call's decoded google.rpc details, where Google puts RetryInfo instead of
  // a header.
  const headers = (error as { response?: { headers?: unknown } } | null)?.response?.headers;
  const mapped = errorForStatus(endpoint, status, code, message);
  return new ProviderError(mapped.code, mapped.message, { cause: error, status, retryAfterMs: retryAfterOf(headers) ?? retryInfoOf(error) });
}

/** The OAuth 2.0 `error` field of a token endpoint's refusal (`invalid_grant`…), where there is one. */
function oauthErrorCode(error: unknown): string | undefined {
  const data = (error as { response?: { data?: unknown } } | undefined)?.response?.data;
  const code = data !== null && typeof data === 'object' ? (data as { error?: unknown }).error : undefined;
  return typeof code === 'string' ? code : undefined;
}

export class VertexClient implements ProviderClient {
  private readonly client: LazyValue<v1.PredictionServiceClient>;
  private readonly path: string;
  /** gRPC over plaintext (an `http://` URL): the token travels as call metadata. */
  private readonly plaintextGrpc: boolean;
  /** REST with a `caFile`: the agent its calls to the endpoint go through. */
  private restAgent: HttpsAgent | undefined;
  /** A federated identity on a proxy route: the route its token exchange takes. */
  private exchangeAdapter: ExchangeAdapter | undefined;
  /** The proxy of every connection the client makes (src/providers/proxy.ts). */
  private readonly route: ProxyRoute;
  /** The proxy the gRPC channel tunnels through, and the `host:port` it asks for. */
  private readonly grpcProxy: URL | undefined;
  private readonly grpcTarget: string;
  /** Set by close(): the gRPC channel's credentials then let no connection start (vertex-transport.ts). */
  private closed = false;

  /**
   * `clientOptions` overrides what is passed to PredictionServiceClient (`sslCreds` included,
   * over the endpoint's `caFile`). An `authClient` or `auth` given there brings its own gaxios
   * transporter: over REST, the answer cap and the `caFile` agent are then that transporter's
   * ({@link restAnswerCap}, {@link trustingAdapter} as its adapter).
   */
  constructor(readonly endpoint: VertexEndpointConfig, clientOptions: ClientOptions = {}) {
    const what = `endpoint "${endpoint.name}" (vertex)`;
    if (!endpoint.project || !endpoint.target) throw new ProviderError('PROVIDER_CONFIG', `${what} needs project and target (the endpoint id)`);
    const transport: unknown = endpoint.transport ?? (endpoint.url ? 'rest' : 'grpc');
    if (transport !== 'grpc' && transport !== 'rest') throw new ProviderError('PROVIDER_CONFIG', `${what}: transport must be "grpc" or "rest", got ${JSON.stringify(transport)}`);
    // The project is known: without it, ADC looks it up, and for workload identity federation
    // that is a call to Cloud Resource Manager before the first prediction.
    const opts: ClientOptions = { apiEndpoint: `${endpoint.region}-aiplatform.googleapis.com`, projectId: endpoint.project };
    let plaintext = false;
    if (endpoint.url) {
      let u: URL;
      try {
        u = new URL(endpoint.url);
      } catch (error) {
        throw new ProviderError('PROVIDER_CONFIG', `${what}: url "${endpoint.url}" is not a URL`, { cause: error });
      }
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ProviderError('PROVIDER_CONFIG', `${what}: url must be http:// (plaintext) or https:// (TLS), for gRPC too; got "${u.protocol}"`);
      plaintext = u.protocol === 'http:';
      Object.assign(opts, { apiEndpoint: u.hostname, port: Number(u.port || (plaintext ? 80 : 443)) });
      if (transport === 'rest') opts.protocol = u.protocol.replace(':', '');
    }
    if (transport === 'rest') {
      opts.fallback = 'rest';
    } else {
      // gax lifts both limits (-1); these are the platform's.
      opts['grpc.max_send_message_length'] = VERTEX_MAX_MESSAGE_BYTES;
      opts['grpc.max_receive_message_length'] = VERTEX_MAX_MESSAGE_BYTES;
    }
    this.plaintextGrpc = transport === 'grpc' && plaintext;
    const plaintextGrpc = this.plaintextGrpc;
    const token = endpoint.token;
    const caFile = endpoint.caFile;
    const route = (this.route = new ProxyRoute(endpoint.proxy, what, endpoint.proxyEnv));
    this.grpcTarget = `${opts.apiEndpoint ?? ''}:${opts.port ?? 443}`;
    this.grpcProxy = transport === 'grpc' ? route.proxyForHost(!plaintext, opts.apiEndpoint ?? '', opts.port ?? 443) : undefined;
    const unfit = identityFitError(endpoint.name, endpoint.kind, endpoint.identity) ?? (token && endpoint.identity ? new ProviderError('PROVIDER_CONFIG', `${what}: a static token and an identity exclude each other`) : undefined);
    if (unfit) throw unfit;
    // Federation (docs/guide/identity.md): the external_account configuration is the SDK's credentials, ADC is not consulted.
    const federation = endpoint.identity && 'gcp' in endpoint.identity ? endpoint.identity.gcp : undefined;
    this.client = new LazyValue(async () => {
      let aiplatform: typeof import('@google-cloud/aiplatform');
      let gax: typeof import('google-gax');
      try {
        [aiplatform, gax] = await Promise.all([aiplatformSdk.get(), gaxSdk.get()]);
      } catch (error) {
        throw new ProviderError('PROVIDER_CONFIG', `endpoint "${endpoint.name}": cannot load @google-cloud/aiplatform: ${error instanceof Error ? error.message : String(error)}`, { cause: error, details: { endpoint: endpoint.name } });
      }
      // Read (and a bad file refused) whatever the scheme, as for the other kinds; over
      // plaintext there is no certificate to check it against.
      const read = caFile === undefined ? undefined : await readCaFile(endpoint.name, caFile);
      const ca = plaintext ? undefined : read;
      const external = federation ? await readExternalAccountConfig(endpoint.name, federation) : undefined;
      try {
        // The REST transport's calls go through the auth client's gaxios; gRPC has its limit above.
        let transporterOptions: GaxiosOptions | undefined;
        // Where gax's REST transport sends the endpoint's calls (`protocol://apiEndpoint:port/…`).
        const origin = new URL(`${opts.protocol ?? 'https'}://${opts.apiEndpoint ?? ''}:${opts.port ?? 443}`).origin;
        if (route.active) {
          // A federated identity's STS exchange, which transporterOptions do not reach (infer routes it).
          if (external) this.exchangeAdapter = gaxiosAdapterOnRoute(undefined, route, undefined, undefined) as ExchangeAdapter;
          // Every request on the route: the endpoint's (REST) with its caFile, the token service's.
          transporterOptions = { adapter: gaxiosAdapterOnRoute(transport === 'rest' ? restAnswerCap(MAX_ANSWER_BYTES) : undefined, route, transport === 'rest' ? origin : undefined, ca) };
        } else if (transport === 'rest') {
          const capped = restAnswerCap(MAX_ANSWER_BYTES);
          if (ca) {
            this.restAgent ??= httpsAgentTrusting(ca);
            transporterOptions = { adapter: trustingAdapter(capped, origin, this.restAgent) };
          } else {
            transporterOptions = { adapter: capped };
          }
        }
        const withAuth: ClientOptions = { ...opts, ...(external ? { credentials: external as ClientOptions['credentials'] } : {}) };
        if (token) {
          // A static token: no ADC lookup, so nothing probes the metadata server.
          const auth = new gax.googleAuthLibrary.OAuth2Client(transporterOptions ? { transporterOptions } : {});
          auth.setCredentials({ access_token: token, expiry_date: Date.now() + 365 * 24 * 3600 * 1000 });
          withAuth.authClient = auth;
        } else if (transporterOptions) {
          // GoogleAuth passes these to whichever auth client ADC resolves to.
          withAuth.clientOptions = { transporterOptions };
        }
        // Without sslCreds gax builds TLS with the default roots, combined with call
        // credentials from the auth client: production's path. grpc-js refuses call
        // credentials on an insecure channel, so plaintext gRPC carries the token per call.
        if (plaintextGrpc) withAuth.sslCreds = gax.grpc.credentials.createInsecure();
        // The client's auth (the static token's, or whatever ADC resolves to) is first asked on
        // the first call, by when the client exists.
        const client: v1.PredictionServiceClient = new aiplatform.v1.PredictionServiceClient({
          ...withAuth,
          ...(ca && transport === 'grpc' ? { sslCreds: grpcCredentialsTrusting(gax.grpc, ca, () => client.auth) } : {}),
          ...(transport === 'grpc' ? grpcProxyOptions(gax.grpc, endpoint.name, this.grpcProxy, () => this.closed) : {}),
          ...clientOptions,
        });
        return client;
      } catch (error) {
        throw new ProviderError('PROVIDER_CONFIG', `endpoint "${endpoint.name}": cannot create the Vertex AI client: ${error instanceof Error ? error.message : String(error)}`, { cause: error, details: { endpoint: endpoint.name } });
      }
    });
    this.path = `projects/${endpoint.project}/locations/${endpoint.region}/endpoints/${endpoint.target}`;
  }

  async infer(request: InferRequest, options: InferOptions = {}): Promise<InferResponse> {
    const scope = callScope(options);
    try {
      const client = await raceAbort(this.client.get(), { signal: scope.signal });
      // Resolved here, not inside the call, so that a failure of ADC (a refused workload
      // identity token, say) is not mistaken for the endpoint's answer. The auth library keeps
      // the token: the exchange happens once, then again near expiry.
      let authHeaders: Headers;
      try {
        if (this.exchangeAdapter) {
          await routeTokenExchange(client.auth, this.exchangeAdapter);
          // Routed for the client's life: later calls need not ask again.
          this.exchangeAdapter = undefined;
        }
        authHeaders = await raceAbort(client.auth.getRequestHeaders(), { signal: scope.signal });
      } catch (error) {
        if (scope.signal.aborted) throw error;
        const { status, code } = statusOf(error);
        // A refused tunnel to the token service is the proxy's failure, not the credentials'.
        throw proxyFailure(error) ?? (this.endpoint.identity ? gcpIdentityError(this.endpoint.name, error) : credentialError(this.endpoint.name, error, status, code ?? oauthErrorCode(error)));
      }
      const remaining = scope.remaining();
      const callOptions: CallOptions = Number.isFinite(remaining) ? { timeout: Math.max(1, Math.floor(remaining)) } : {};
      if (this.plaintextGrpc) {
        const authorization = authHeaders.get('authorization');
        if (authorization) callOptions.otherArgs = { headers: { authorization } };
      }
      return (this.endpoint.wire ?? 'binary') === 'json'
        ? await this.predict(client, request, scope.signal, callOptions)
        : await this.rawPredict(client, request, scope.signal, callOptions);
    } catch (error) {
      // The cap's refusal reaches here wrapped by gaxios (as a GaxiosError's cause) or not.
      // A refused certificate first: gRPC reports it as UNAVAILABLE, which would read as a
      // retryable 503.
      throw capRefusal(error) ?? (await grpcProxyFailure(error, this.grpcProxy, this.grpcTarget)) ?? tlsError(this.endpoint.name, error) ?? vertexAnswerError(this.endpoint.name, error) ?? scope.classify(error, this.endpoint.name);
    } finally {
      scope.dispose();
    }
  }

  private async rawPredict(client: v1.PredictionServiceClient, request: InferRequest, signal: AbortSignal, callOptions: CallOptions): Promise<InferResponse> {
    const start = performance.now();
    const image = encodeImageRequest(request);
    const enc = image ?? encodeRequest(request, 'binary');
    // Encoded offload: the fingerprint travels as call metadata (gRPC) or headers (REST).
    if (image) callOptions = { ...callOptions, otherArgs: { ...callOptions.otherArgs, headers: { ...(callOptions.otherArgs?.headers as Record<string, string> | undefined), ...imageHeaders(request) } } };
    const encoded = performance.now();
    const [body] = await raceAbort(client.rawPredict({ endpoint: this.path, httpBody: { contentType: enc.contentType, data: enc.body } }, callOptions), { signal });
    const received = performance.now();
    const data = body.data instanceof Uint8Array ? body.data : typeof body.data === 'string' ? Buffer.from(body.data, 'base64') : new Uint8Array(0);
    const decoded = decodeResponse(this.endpoint.name, data);
    return { outputs: decoded.outputs, timing: timing({ start, encoded, received, decoded: performance.now() }, decoded.remoteMs), bytesSent: enc.body.byteLength, bytesReceived: data.byteLength, ...(enc.compression ? { compression: enc.compression } : {}) };
  }

  private async predict(client: v1.PredictionServiceClient, request: InferRequest, signal: AbortSignal, callOptions: CallOptions): Promise<InferResponse> {
    const start = performance.now();
    const instances = tensorsToInstances(request.inputs).map(toProtoValue);
    const parameters = toProtoValue({ model: request.model, ...(request.cut ? { cut: request.cut } : {}) });
    const bytesSent = JSON.stringify(instances).length;
    const encoded = performance.now();
    const [response] = await raceAbort(client.predict({ endpoint: this.path, instances, parameters }, callOptions), { signal });
    const received = performance.now();
    const predictions = (response.predictions ?? []).map(fromValue);
    const meta = response.metadata ? (fromValue(response.metadata) as { computeMs?: unknown; outputs?: Record<string, { dtype?: DType }> } | null) : null;
    const dtypes: Record<string, DType> = {};
    for (const [name, info] of Object.entries(meta?.outputs ?? {})) if (info.dtype) dtypes[name] = info.dtype;
    let outputs;
    try {
      outputs = predictionsToTensors(predictions, dtypes);
    } catch (error) {
      throw new ProviderError('PROVIDER_RESPONSE', `endpoint "${this.endpoint.name}" returned predictions that are not tensors: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    }
    const remote = typeof meta?.computeMs === 'number' ? meta.computeMs : undefined;
    return { outputs, timing: timing({ start, encoded, received, decoded: performance.now() }, remote), bytesSent, bytesReceived: JSON.stringify(response.predictions ?? []).length };
  }

  async close(): Promise<void> {
    // First: grpc-js may still reconnect a closed channel's subchannel once its backoff ends.
    this.closed = true;
    await (await this.client.peek())?.close();
    this.restAgent?.destroy();
    await this.route.destroy();
  }
}
