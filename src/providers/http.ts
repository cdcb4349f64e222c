/**
 * The plain-HTTP transport used by the PAI-EAS and OIP v2 clients: node:http(s) on
 * keep-alive agents with Nagle's algorithm off. Global fetch (undici) cost 0.6–1.1 ms more
 * per 300 KB POST on loopback; node:http without `noDelay` may hold a request's last segment
 * until the previous one is acknowledged (0.15–0.2 ms on a raw loopback POST, up to a round
 * trip on a real network).
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { LazyValue } from '../lazy.js';
import { readCaFile } from './ca.js';
import { errorForStatus, ProviderError, retryAfterOf } from './errors.js';
import type { CallScope } from './deadline.js';
import { ProxyRoute } from './proxy.js';
import type { EndpointConfig } from './types.js';

/** Largest answer read (the decoders' own limit): beyond it the call fails before buffering more. */
export const MAX_ANSWER_BYTES = 1024 * 1024 * 1024;

/** An answer refused for its size (`what`: how it was told, announced or streamed). */
export function answerTooLarge(what: string, limit = MAX_ANSWER_BYTES, cause?: unknown): ProviderError {
  return new ProviderError('PROVIDER_RESPONSE', `the answer ${what} exceeds the ${limit}-byte limit`, { cause, details: { limit } });
}

export interface HttpResult {
  status: number;
  headers: Headers;
  body: Uint8Array;
}

// Agents hand their options to net.connect, which takes `noDelay` (absent from AgentOptions' type).
const socketOptions: { keepAlive: boolean; noDelay: boolean } = { keepAlive: true, noDelay: true };
const httpAgent = new HttpAgent(socketOptions);
const httpsAgent = new HttpsAgent(socketOptions);

/**
 * An agent like the shared one that trusts exactly `ca` (an endpoint's `caFile`): its own, so
 * that no other endpoint's connection, pooled or new, is checked against these roots.
 */
export function httpsAgentTrusting(ca: Buffer): HttpsAgent {
  return new HttpsAgent({ ...socketOptions, ca });
}

/**
 * The agent for the endpoint's URL, built on first use: its proxy route's when it has a proxy
 * setting or the environment names a proxy (src/providers/proxy.ts), else `httpsAgentTrusting`
 * its `caFile`; undefined (the shared agents) with neither, or resolving to undefined over
 * `http://` with only a `caFile`. Throws PROVIDER_CONFIG for a proxy that is not a URL.
 */
export function endpointAgent(endpoint: EndpointConfig): LazyValue<HttpAgent | undefined> | undefined {
  const route = new ProxyRoute(endpoint.proxy, `endpoint "${endpoint.name}"`, endpoint.proxyEnv);
  const file = endpoint.caFile;
  if (file === undefined && !route.active) return undefined;
  const secure = !endpoint.url?.startsWith('http:');
  return new LazyValue(async () => {
    const ca = file === undefined ? undefined : await readCaFile(endpoint.name, file);
    const routed = route.agent(secure, secure ? ca : undefined);
    if (routed) return routed;
    return secure && ca ? httpsAgentTrusting(ca) : undefined;
  });
}

function toHeaders(res: IncomingMessage): Headers {
  const headers = new Headers();
  const raw = res.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) headers.append(raw[i] ?? '', raw[i + 1] ?? '');
  return headers;
}

/** One request; resolves with the whole answer whatever its status. */
function send(url: string, headers: Record<string, string>, body: Uint8Array, signal: AbortSignal, agent: HttpAgent | undefined): Promise<{ status: number; headers: Headers; body: Uint8Array }> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const secure = target.protocol === 'https:';
    const req = (secure ? httpsRequest : httpRequest)(target, {
      method: 'POST',
      agent: agent ?? (secure ? httpsAgent : httpAgent),
      headers: { ...headers, 'content-length': String(body.byteLength) },
      signal,
    }, (res) => {
      res.on('error', reject);
      const tooLarge = (what: string): void => {
        req.destroy();
        reject(answerTooLarge(what));
      };
      // Pre-size the answer when its length is announced (node's parser holds the server to
      // it): one copy per chunk and no concatenation. The announcement is the server's word:
      // checked before anything is allocated for it.
      const announced = Number(res.headers['content-length']);
      if (Number.isSafeInteger(announced) && announced > MAX_ANSWER_BYTES) {
        tooLarge(`of ${announced} bytes (Content-Length)`);
        return;
      }
      const sized = Number.isSafeInteger(announced) && announced >= 0 ? Buffer.allocUnsafe(announced) : undefined;
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.byteLength;
        if (size > MAX_ANSWER_BYTES) {
          tooLarge('streamed so far');
          return;
        }
        if (sized) chunk.copy(sized, size - chunk.byteLength);
        else chunks.push(chunk);
      });
      res.on('end', () => {
        if (!res.complete) {
          reject(new Error('socket hang up'));
          return;
        }
        resolve({ status: res.statusCode ?? 0, headers: toHeaders(res), body: sized ? sized.subarray(0, size) : Buffer.concat(chunks, size) });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * POSTs `body` and reads the whole answer; non-2xx answers become classified errors. `agent`
 * (an endpoint's own for `url`, see {@link endpointAgent}) replaces the shared ones.
 */
export async function post(endpoint: string, url: string, headers: Record<string, string>, body: Uint8Array, scope: CallScope, agent?: HttpAgent): Promise<HttpResult> {
  let response: { status: number; headers: Headers; body: Uint8Array };
  try {
    response = await send(url, headers, body, scope.signal, agent);
  } catch (error) {
    throw scope.classify(error, endpoint);
  }
  const bytes = response.body;
  if (response.status < 200 || response.status >= 300) {
    let code: string | undefined;
    let message = Buffer.from(bytes).toString('utf8').slice(0, 500);
    try {
      const json = JSON.parse(message) as { code?: unknown; message?: unknown; error?: unknown };
      if (typeof json.code === 'string') code = json.code;
      if (typeof json.message === 'string') message = json.message;
      else if (typeof json.error === 'string') message = json.error;
    } catch {
      // not JSON: keep the text
    }
    throw errorForStatus(endpoint, response.status, code, message, retryAfterOf(response.headers));
  }
  return { status: response.status, headers: response.headers, body: bytes };
}
