/**
 * The transports under the Vertex AI client, as they are handed to google-gax: the REST
 * transport's gaxios adapters (the answer cap, the `caFile` agent, the proxy route) and the
 * gRPC channel's credentials and proxy options. The client (vertex.ts) decides which apply.
 */
import type { Agent as HttpsAgent } from 'node:https';
import { pipeline, Readable, Transform } from 'node:stream';
import type { googleAuthLibrary } from 'google-gax';
import { ProviderError } from './errors.js';
import { answerTooLarge, MAX_ANSWER_BYTES } from './http.js';
import { probeTunnel } from './proxy.js';

export type GaxiosOptions = googleAuthLibrary.gaxios.GaxiosOptions;
type GaxiosAdapter = NonNullable<GaxiosOptions['adapter']>;

/** The length an answer's Content-Length announces, if it announces one. */
function announcedLength(response: unknown): number | undefined {
  // node-fetch's Headers, not the global class.
  const headers = (response as { headers?: { get?: unknown } } | null | undefined)?.headers;
  if (typeof headers?.get !== 'function') return undefined;
  const announced = Number((headers.get.call(headers, 'content-length') as string | null) ?? NaN);
  return Number.isSafeInteger(announced) && announced >= 0 ? announced : undefined;
}

/** node-fetch's refusal of a body past its `size` (its FetchError of type `max-size`). */
function overSize(error: unknown): boolean {
  return error instanceof Error && error.name === 'FetchError' && (error as { type?: unknown }).type === 'max-size';
}

/**
 * A gaxios adapter that refuses an answer larger than `limit`: at once when its Content-Length
 * says so, and as soon as a streamed one passes it, a refusal's body included; either way its
 * socket is destroyed rather than left holding the rest of the answer unread.
 *
 * gax's REST transport makes its calls through the auth client's `fetch`, that is its gaxios
 * transporter, with a request it builds itself and `responseType: 'stream'`, then buffers the
 * body with `arrayBuffer()`; nothing of gax's reaches the request to limit that. An adapter in
 * the transporter's defaults (`transporterOptions`) wraps every request. It sets what gaxios
 * makes of a request's own `maxContentLength` (only a request's: a default's is not turned
 * into `size`): gaxios's check of the Content-Length, and node-fetch's `size`, which node-fetch
 * enforces chunk by chunk while the body (decompressed) is read, destroying the response stream
 * and so the socket.
 */
export function restAnswerCap(limit = MAX_ANSWER_BYTES): GaxiosAdapter {
  return async <T>(options: Parameters<GaxiosAdapter>[0], defaultAdapter: (options: Parameters<GaxiosAdapter>[0]) => Promise<googleAuthLibrary.gaxios.GaxiosResponse<T>>) => {
    // gaxios refuses an announced length without touching the body, which would stay unread
    // on the socket: this aborts the request. Past node-fetch's `size`, it has destroyed the
    // body (and with it the socket) itself.
    const cancel = new AbortController();
    const signal = options.signal ? AbortSignal.any([options.signal, cancel.signal]) : cancel.signal;
    const streamedTooLarge = (cause?: unknown): ProviderError => answerTooLarge('streamed so far', limit, cause);
    let response: googleAuthLibrary.gaxios.GaxiosResponse<T>;
    try {
      response = await defaultAdapter({ ...options, signal, maxContentLength: limit, size: limit });
    } catch (error) {
      const announced = announcedLength((error as { response?: unknown } | null)?.response);
      if (announced !== undefined && announced > limit) {
        cancel.abort();
        throw answerTooLarge(`of ${announced} bytes (Content-Length)`, limit, error);
      }
      throw overSize(error) ? streamedTooLarge(error) : error;
    }
    if (options.responseType !== 'stream') return response;
    if (!(options.validateStatus ? options.validateStatus(response.status) : response.ok)) {
      // gaxios reads a refusal's body whole, from `data`, to put it in its error.
      const body = response.data;
      if (body instanceof Readable) {
        let size = 0;
        const counted = new Transform({
          transform(chunk: Buffer, _encoding, done) {
            size += chunk.byteLength;
            if (size <= limit) {
              done(null, chunk);
              return;
            }
            // The pipeline destroys node-fetch's body, and with it the response and its socket.
            done(streamedTooLarge());
          },
        });
        response.data = pipeline(body, counted, () => undefined) as T;
      }
      return response;
    }
    // gax reads the answer with `arrayBuffer()`, after this adapter has returned: node-fetch's
    // refusal becomes the cap's error there, on this one response.
    const arrayBuffer = response.arrayBuffer.bind(response);
    Object.defineProperty(response, 'arrayBuffer', {
      configurable: true,
      writable: true,
      value: () => arrayBuffer().catch((error: unknown) => {
        throw overSize(error) ? streamedTooLarge(error) : error;
      }),
    });
    return response;
  };
}

/**
 * Wraps a gaxios adapter so that requests to `origin` (the endpoint's) go through `agent`, one
 * that trusts the endpoint's `caFile`. An agent in the transporter's defaults would lose: gax
 * puts its own keep-alive agent on every request it makes, and a request's options win over
 * the defaults. The adapter sees the request as it is about to be sent, so its agent is the
 * last word. Only the endpoint's origin: the same transporter fetches ADC's tokens from
 * Google, which the private CA must not stand in for.
 */
export function trustingAdapter(inner: GaxiosAdapter, origin: string, agent: HttpsAgent): GaxiosAdapter {
  return (options, defaultAdapter) => {
    const url = options.url instanceof URL ? options.url : new URL(String(options.url));
    return inner(url.origin === origin ? { ...options, agent } : options, defaultAdapter);
  };
}

/**
 * TLS channel credentials that trust exactly `ca` (the endpoint's `caFile`), with the auth
 * client's bearer token on every call. gax takes a given `sslCreds` as the whole of the
 * channel's credentials, without the call credentials it adds to its own TLS: they are
 * combined here as gax combines them (google-gax's `GrpcClient._getCredentials`).
 */
export function grpcCredentialsTrusting(grpc: typeof import('google-gax').grpc, ca: Buffer, auth: () => { getRequestHeaders(url?: string): Promise<Headers> }): ReturnType<typeof grpc.credentials.createSsl> {
  return grpc.credentials.combineChannelCredentials(
    grpc.credentials.createSsl(ca),
    grpc.credentials.createFromGoogleCredential({
      // grpc-js takes the headers as a plain object, not the auth library's `Headers`.
      getRequestHeaders: async (url?: string) => Object.fromEntries((await auth().getRequestHeaders(url)).entries()),
    }),
  );
}


type Grpc = typeof import('google-gax').grpc;
type ChannelCredentials = ReturnType<Grpc['credentials']['createInsecure']>;
type SecureConnector = ReturnType<ChannelCredentials['_createSecureConnector']>;

/**
 * `inner`, except that no connection is attempted once `closed()` says the client is closed.
 * grpc-js cannot call off a reconnection it has scheduled: after a failed attempt the subchannel
 * waits out its backoff (gax sets 1 s) in TRANSIENT_FAILURE, where pick_first at once asks it to
 * connect again (`Subchannel.startConnecting` sets `continueConnecting`). Closing the channel
 * drops the subchannel's last ref, but `Subchannel.unref` only stops a CONNECTING or READY one
 * and leaves the backoff timer running: when it fires, the subchannel connects once more (to
 * the endpoint, or to the proxy for a tunnel) for a client already closed. Each attempt awaits
 * its secure connector's `waitForReady()` before it opens a socket
 * (`Http2SubchannelConnector.connect`); this one refuses after close. Equal only to itself, so
 * that grpc-js's global subchannel pool gives another client's channel none of its subchannels.
 */
function closableCredentials(grpc: Grpc, inner: ChannelCredentials, closed: () => boolean): ChannelCredentials {
  class Closable extends grpc.ChannelCredentials {
    override compose(callCredentials: Parameters<ChannelCredentials['compose']>[0]): ChannelCredentials {
      return closableCredentials(grpc, inner.compose(callCredentials), closed);
    }
    _isSecure(): boolean {
      return inner._isSecure();
    }
    _equals(other: ChannelCredentials): boolean {
      return other === this;
    }
    _createSecureConnector(...args: Parameters<ChannelCredentials['_createSecureConnector']>): SecureConnector {
      const connector = inner._createSecureConnector(...args);
      return {
        connect: (socket) => connector.connect(socket),
        waitForReady: () => (closed() ? Promise.reject(new Error('the client is closed')) : connector.waitForReady()),
        getCallCredentials: () => connector.getCallCredentials(),
        destroy: () => connector.destroy(),
      };
    }
  }
  return new Closable();
}

/**
 * Channel options that put the gRPC channel on the route's decision for its target: grpc-js's
 * own proxy handling (grpc_proxy / https_proxy / http_proxy, with its own NO_PROXY rules) off,
 * and with a `proxy`, a channel to the proxy that opens a CONNECT tunnel to the endpoint, as
 * grpc-js builds one for a proxy from its environment (`grpc.http_connect_target`), the
 * endpoint's authority kept for TLS and call credentials. gax hands `grpc.channelFactoryOverride`
 * to the client as `channelFactoryOverride`. grpc-js speaks plain HTTP to a proxy: an `https://`
 * proxy is refused (PROVIDER_CONFIG). Given `closed` (whether the client has been closed), the
 * channel is built here, with or without a proxy, on credentials that start no connection once
 * the client is closed ({@link closableCredentials}).
 */
export function grpcProxyOptions(grpc: Grpc, endpoint: string, proxy: URL | undefined, closed?: () => boolean): Record<string, unknown> {
  if (proxy && proxy.protocol !== 'http:') throw new ProviderError('PROVIDER_CONFIG', `endpoint "${endpoint}": gRPC reaches a proxy over plain HTTP only; ${proxy.protocol}// proxies serve the REST transport`, { details: { endpoint } });
  if (!proxy) return { 'grpc.enable_http_proxy': 0, ...(closed ? closableChannelOptions(grpc, closed) : {}) };
  const credentials = proxy.username || proxy.password ? `${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}` : undefined;
  return {
    'grpc.enable_http_proxy': 0,
    'grpc.channelFactoryOverride': (address: string, channelCredentials: ChannelCredentials, options: Record<string, unknown>) =>
      new grpc.Channel(`${proxy.hostname}:${proxy.port || 80}`, closed ? closableCredentials(grpc, channelCredentials, closed) : channelCredentials, {
        ...options,
        'grpc.http_connect_target': `dns:///${address}`,
        ...(credentials ? { 'grpc.http_connect_creds': credentials } : {}),
        'grpc.default_authority': typeof options['grpc.default_authority'] === 'string' ? options['grpc.default_authority'] : address,
      }),
  };
}

/**
 * The channel grpc-js would build itself, its own proxy handling included, but on credentials
 * that start no connection once `closed()` ({@link closableCredentials}): for a client that
 * leaves the proxy to grpc-js.
 */
export function closableChannelOptions(grpc: Grpc, closed: () => boolean): Record<string, unknown> {
  return {
    'grpc.channelFactoryOverride': (address: string, channelCredentials: ChannelCredentials, options: Record<string, unknown>) =>
      new grpc.Channel(address, closableCredentials(grpc, channelCredentials, closed), options),
  };
}

/** gRPC's UNAVAILABLE: grpc-js's status for a channel that cannot connect, a refused tunnel included. */
const UNAVAILABLE = 14;

/**
 * The proxy's refusal behind a gRPC UNAVAILABLE, when the channel goes through `proxy`: grpc-js
 * logs the proxy's status and keeps none, so the proxy is asked once more for a tunnel to
 * `target`, and its answer decides. Undefined for any other failure, or when the tunnel opens
 * (the failure was then the endpoint's).
 */
export async function grpcProxyFailure(error: unknown, proxy: URL | undefined, target: string): Promise<ProviderError | undefined> {
  if (!proxy || (error as { code?: unknown } | null)?.code !== UNAVAILABLE) return undefined;
  const failure = await probeTunnel(proxy, target, 2_000);
  return failure && new ProviderError(failure.code, failure.message, { cause: error, details: failure.details });
}
