/**
 * The service's node:http side: one request handler that finds the front a request is for,
 * answers the routes that are not inferences, and hands every inference to the inference core
 * through one {@link FrontIO}, made once. Refusals are written in the shape of the route's front.
 */
import { randomUUID } from 'node:crypto';
import { createServer as createPlainServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { Logger } from 'pino';
import { OIP_HEADER_LENGTH } from '../../src/providers/index.js';
import { BODY_MIN_PROGRESS_BYTES } from '../body.js';
import { CloudError, describeError } from '../errors.js';
import { COMPUTE_HEADER, CUT_HEADER, DEADLINE_HEADER, MODEL_HEADER, requestBudget, RETRY_AFTER_SECONDS, type Front, type FrontIO, type Route } from '../front.js';
import type { ConnectionGuard } from '../connections.js';
import type { ImageRoute } from '../encoded.js';
import type { ServiceSettings } from '../options.js';
import { containerFront } from './container.js';
import { easFront } from './eas.js';
import { header, plainError, type FrontContext, type HttpEndpoint, type HttpFront, type RouteHints } from './http-front.js';
import { oipFront } from './oip.js';
import { customAttributes, sagemakerFront, targetModel } from './sagemaker.js';
import { tandemFront } from './tandem.js';
import { vertexHttpFront } from './vertex-http.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;
type Router = (path: string, req: IncomingMessage, hints: RouteHints) => Route | undefined;

const NO_ENDPOINTS: readonly HttpEndpoint[] = [];
const JSON_TYPE = /\bjson\b/i;

/** The most of a refused body read (and dropped) for its client's sake; a connection sending more is closed. */
const DRAIN_MAX_BYTES = 4 * 1024 * 1024;

/**
 * Reads and drops what is left of a refused body, so that the client, which may be still
 * sending it, reads its answer (many clients send the whole body first) and the connection can
 * serve the next request. A connection is closed once it has sent {@link DRAIN_MAX_BYTES}
 * more (reading a half-sent 60 MB body for nothing costs the service its time), or when the
 * body stops keeping the pace (`BODY_MIN_PROGRESS_BYTES` per `idleMs`; a half-sent one, a
 * trickle), instead of holding it until the request timeout. Nothing of it is kept.
 */
function drainWhilePaced(req: IncomingMessage, res: ServerResponse, idleMs: number): void {
  if (req.complete) return;
  req.resume();
  // The socket's count: node:http drops the body's 'data' listeners once the answer is out.
  const socket = req.socket;
  const start = socket.bytesRead;
  let paced = start;
  const timer = setInterval(() => {
    if (socket.bytesRead - paced >= BODY_MIN_PROGRESS_BYTES) paced = socket.bytesRead;
    else socket.destroy();
  }, idleMs);
  const onData = (): void => {
    if (socket.bytesRead - start > DRAIN_MAX_BYTES) socket.destroy();
  };
  req.on('data', onData);
  // Listened to again after node:http's own drain has taken the listeners off.
  res.once('finish', () => {
    if (!req.complete) req.on('data', onData);
  });
  const done = (): void => {
    clearInterval(timer);
    req.off('data', onData);
  };
  req.once('end', done);
  socket.once('close', done);
}

/**
 * Aborts once the client has gone. node:http emits 'close' on a response when it is finished
 * and also when its socket closes first, so 'close' before `writableFinished` means nobody
 * will read the answer. The request's own 'close' only says its body was read, and a
 * keep-alive socket outlives the request: the response is the one to watch.
 */
function clientSignal(res: ServerResponse): AbortSignal {
  const controller = new AbortController();
  if (res.destroyed) controller.abort();
  else res.once('close', () => {
    if (!res.writableFinished) controller.abort();
  });
  return controller.signal;
}

/** Writes a refusal in `front`'s shape (the plain one without a route); returns the status answered. */
function writeError(res: ServerResponse, front: HttpFront | undefined, error: unknown, log: Logger): number {
  const summary = describeError(error, log);
  // The client has gone: there is nothing to write to (node:http would drop it silently).
  if (res.destroyed) return summary.status;
  if (res.headersSent) {
    res.destroy();
    return summary.status;
  }
  const headers: Record<string, string | number> = { 'content-type': 'application/json' };
  if (summary.status === 429 || summary.status === 503) headers['retry-after'] = RETRY_AFTER_SECONDS;
  const reply = front ? front.error(summary, headers) : plainError(summary);
  res.writeHead(reply.status, headers).end(JSON.stringify(reply.body));
  return reply.status;
}

/** The node:http request handler of every HTTP front. */
export function httpHandler(ctx: FrontContext): Handler {
  const { settings, core, formats, bodies, metrics } = ctx;
  const log = settings.log;
  // In the order their routes are tried: it settles a path two fronts would take (a Vertex
  // predict route set to another front's path goes to the container contract).
  const byFront: Readonly<Record<Front, HttpFront>> = {
    container: containerFront(ctx),
    sagemaker: sagemakerFront(ctx),
    vertex: vertexHttpFront(ctx),
    eas: easFront(ctx),
    oip: oipFront(ctx),
    tandem: tandemFront(ctx),
  };
  const fronts = Object.values(byFront);
  const service: HttpEndpoint = {
    method: 'GET',
    matches: (path) => path === '/metrics',
    handle: ({ res, refuse }) => {
      metrics.registry.metrics().then((text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text), refuse);
    },
  };
  const endpoints = [...fronts.flatMap((f) => f.endpoints ?? []), service];
  const getEndpoints = endpoints.filter((e) => e.method === 'GET');
  const postEndpoints = endpoints.filter((e) => e.method === 'POST');
  const routers: Router[] = [];
  for (const f of fronts) if (f.route) routers.push(f.route.bind(f));

  /** The inference route of a POST; throws on a malformed path segment. */
  function route(path: string, req: IncomingMessage): Route | undefined {
    const attrs = customAttributes(req.headers['x-amzn-sagemaker-custom-attributes']);
    const hints: RouteHints = { target: targetModel(req), model: header(req, MODEL_HEADER) ?? attrs['model'], cut: header(req, CUT_HEADER) ?? attrs['cut'] };
    for (const router of routers) {
      const r = router(path, req, hints);
      if (r) return hints.cut && !r.signedOnly ? { ...r, cut: r.cut ?? hints.cut } : r;
    }
    return undefined;
  }

  /** The HTTP side of the inference core's path; the exchange is the response (its `req` is the request). */
  const io: FrontIO<ServerResponse> = {
    budget: (res) => requestBudget(header(res.req, DEADLINE_HEADER), settings.timeoutMs),
    authorize(res, r) {
      byFront[r.front].authorize?.(res.req, r);
    },
    // A body that says it is JSON is held to the JSON limit before it is read, one that turns
    // out to be from its first bytes (unless it may be an image or OIP binary); the bytes stay in
    // the body budget until the answer is written.
    body(res, r) {
      const req = res.req;
      if (JSON_TYPE.test(header(req, 'content-type') ?? '')) return bodies.read(req, Math.min(r.maxBody, settings.maxJson), res);
      return bodies.read(req, r.maxBody, res, (r as ImageRoute).image === undefined && req.headers[OIP_HEADER_LENGTH] === undefined ? settings.maxJson : undefined);
    },
    verify(res, r, path, body) {
      const front = byFront[r.front];
      return front.verify ? front.verify(res.req, r, path, body) : undefined;
    },
    parse: (res, body, r, until) => formats.parse(body, header(res.req, OIP_HEADER_LENGTH), r, until),
    signal: clientSignal,
    // The socket, not the response: a pipelined request's response gets no 'close' while
    // an earlier one is being answered.
    closed: (res) => res.req.socket.destroyed,
    answer(res, r, requestId, outputs, parsed, model, cut, computeMs) {
      const compute = computeMs.toFixed(3);
      const headers: Record<string, string | number> = { 'x-request-id': requestId, [COMPUTE_HEADER]: compute };
      let payload = formats.encode(outputs, parsed, headers, { model, cut, compute });
      const front = byFront[r.front];
      if (front.finish) payload = front.finish(res.req, r, parsed, headers, payload, compute);
      headers['content-length'] = payload.byteLength;
      res.writeHead(200, headers).end(payload);
      return payload.byteLength;
    },
  };

  return (req, res) => {
    // From node:http handing over the request: the log's totalMs is the whole service time.
    const started = performance.now();
    const requestId = header(req, 'x-request-id') ?? header(req, 'x-amzn-requestid') ?? randomUUID();
    // A child logger only for the paths that log more than the one inference line: making one
    // is not free on the hot path.
    let child: Logger | undefined;
    const reqLog = (): Logger => (child ??= log.child({ requestId }));
    let r: Route | undefined;
    const refuse = (error: unknown): number => {
      if (!res.headersSent) res.setHeader('x-request-id', requestId);
      const status = writeError(res, r === undefined ? undefined : byFront[r.front], error, reqLog());
      drainWhilePaced(req, res, settings.bodyIdleMs);
      return status;
    };
    const url = req.url ?? '/';
    const query = url.indexOf('?');
    const path = query < 0 ? url : url.slice(0, query);
    const method = req.method ?? 'GET';
    for (const endpoint of method === 'POST' ? postEndpoints : method === 'GET' ? getEndpoints : NO_ENDPOINTS) {
      if (!endpoint.matches(path)) continue;
      res.setHeader('x-request-id', requestId);
      endpoint.handle({ req, res, path, refuse });
      return;
    }
    if (method === 'POST') {
      try {
        r = route(path, req);
      } catch (error) {
        refuse(error);
        return;
      }
    }
    if (r === undefined) {
      refuse(new CloudError(404, 'CLOUD_ROUTE_NOT_FOUND', `no route for ${method} ${path}`));
      return;
    }
    // An inference answer carries the id in its writeHead: a header set beforehand would put
    // node:http on its slower path of merging the two header sets.
    core.serve(io, res, r, path, requestId, started, refuse, reqLog);
  };
}

/**
 * The node:http (or https) server of `handler`, with the timeouts the platforms expect and
 * the connection caps of `connections`.
 */
export function createHttpServer(settings: ServiceSettings, handler: Handler, connections?: ConnectionGuard): Server {
  // node:http enforces headersTimeout and requestTimeout only when it sweeps its connections
  // (every 30 s by default): sweep often enough that a trickled request ends near its timeout.
  const connectionsCheckingInterval = Math.max(50, Math.min(1000, Math.floor(settings.headersTimeoutMs / 4)));
  // Nagle off explicitly (node's default as well): an answer's last segment must not wait for an ACK.
  const options = { noDelay: true, connectionsCheckingInterval };
  const server = settings.tls ? createTlsServer({ key: settings.tls.key, cert: settings.tls.cert, ...options }, handler) : createPlainServer(options, handler);
  // SageMaker keeps connections open for up to 60 s; outlive it so the platform closes first.
  server.keepAliveTimeout = settings.keepAliveTimeoutMs;
  // A client that trickles its request (slowloris) cannot hold a connection past the deadline,
  // nor its headers past headersTimeout; a trickled body meets the body pace first (body.ts).
  server.requestTimeout = settings.timeoutMs;
  server.headersTimeout = Math.min(settings.headersTimeoutMs, settings.timeoutMs);
  if (connections) {
    connections.attach(server);
    // The guard closes what is over its caps once accepted; node's own cap is the backstop
    // for sockets closed but not yet gone, and keeps the descriptors bounded.
    server.maxConnections = 2 * connections.caps.total;
  }
  return server;
}
