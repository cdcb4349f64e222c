/**
 * What an HTTP front is to the service's node:http handler (`http.ts`): its routes, its
 * credential checks, what it adds to an answer and the shape of its errors. Also the pieces
 * several HTTP fronts use: request headers, path segments, the health answer and the plain
 * JSON error shape.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { BodyReader } from '../body.js';
import type { InferenceCore } from '../core.js';
import { CloudError, type ErrorSummary } from '../errors.js';
import type { BodyFormats } from '../formats.js';
import type { ParsedBody, Route } from '../front.js';
import type { Lifecycle } from '../lifecycle.js';
import type { CloudMetrics } from '../metrics.js';
import type { ModelRepository } from '../models.js';
import type { ServiceSettings } from '../options.js';

/** What the fronts are built from: the service's parts, made once. */
export interface FrontContext {
  readonly settings: ServiceSettings;
  readonly repo: ModelRepository;
  readonly metrics: CloudMetrics;
  readonly bodies: BodyReader;
  readonly formats: BodyFormats;
  readonly core: InferenceCore;
  readonly lifecycle: Lifecycle;
}

/** Model and cut a request names in headers, whatever its route (Tandem's, or SageMaker's custom attributes). */
export interface RouteHints {
  /** X-Amzn-SageMaker-Target-Model, without its `.tar.gz` / `.onnx`. */
  readonly target: string | undefined;
  readonly model: string | undefined;
  readonly cut: string | undefined;
}

/** One request to a route that is not an inference (health, metadata, the link probe). */
export interface HttpExchange {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly path: string;
  /** Answers a failure in the plain shape; returns its status. */
  readonly refuse: (error: unknown) => number;
}

export interface HttpEndpoint {
  readonly method: 'GET' | 'POST';
  matches(path: string): boolean;
  handle(x: HttpExchange): void;
}

/** A failure as a front writes it: the status it answers with, and the JSON body. */
export interface ErrorReply {
  status: number;
  body: unknown;
}

export interface HttpFront {
  /** Routes that are not inferences, tried before every inference route. */
  readonly endpoints?: readonly HttpEndpoint[];
  /** The inference route a POST to `path` is, if this front serves it. */
  route?(path: string, req: IncomingMessage, hints: RouteHints): Route | undefined;
  /** Credential checks that need no body. */
  authorize?(req: IncomingMessage, r: Route): void;
  /** Credential checks over the body. */
  verify?(req: IncomingMessage, r: Route, path: string, body: Buffer): Promise<void> | undefined;
  /** Adds to an answer the family's encoding wrote (headers, or a wrapping): returns the payload to send. */
  finish?(req: IncomingMessage, r: Route, parsed: ParsedBody, headers: Record<string, string | number>, payload: Uint8Array, compute: string): Uint8Array;
  /** A failure in this front's shape; may add headers. */
  error(e: ErrorSummary, headers: Record<string, string | number>): ErrorReply;
}

export const header = (req: IncomingMessage, name: string): string | undefined => {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
};

/** A percent-decoded path segment; a malformed escape is the client's error, not a crash. */
export function pathSegment(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch (error) {
    throw new CloudError(400, 'CLOUD_PATH_INVALID', `the request path has a malformed percent-escape in "${raw.slice(0, 100)}"`, { cause: error, retryable: false });
  }
}

/** The error shape of Tandem's own routes, OIP and EAS: the code at the top, and in `error`. */
export function plainError(e: ErrorSummary): ErrorReply {
  const { status, code, message } = e;
  return { status, body: { code, message, error: { code, message, status } } };
}

/** The health answer of every container contract (SageMaker /ping, Vertex's health route, OIP's). */
export function answerHealth(res: ServerResponse, ctx: FrontContext): void {
  const draining = ctx.lifecycle.draining;
  const names = ctx.repo.names();
  const ok = !draining && names.length > 0;
  res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ status: ok ? 'ok' : draining ? 'draining' : 'no models', models: names }));
}
