/**
 * Tandem's own fast path: `POST /v1/models/{m}/infer[?cut=cN]` with a tensor payload (msgpack)
 * in and out, the route the edge runtime's own client takes, and the link probe the edge uses
 * to measure the link's bandwidth. Plain JSON errors; no credentials of its own.
 */
import type { IncomingMessage } from 'node:http';
import { LINK_PROBE_MAX_BYTES, LINK_PROBE_PATH } from '../../src/providers/index.js';
import { draining } from '../errors.js';
import type { Route } from '../front.js';
import { pathSegment, plainError, type FrontContext, type HttpExchange, type HttpFront, type RouteHints } from './http-front.js';

const INFER_RE = /^\/v1\/models\/([^/]+)\/infer$/;

export function tandemFront(ctx: FrontContext): HttpFront {
  const { bodies, lifecycle, metrics, settings } = ctx;

  /** Reads the probe's bytes and answers 204: the client times the transfer. */
  function linkProbe({ req, res, refuse }: HttpExchange): void {
    if (lifecycle.draining) {
      refuse(draining());
      return;
    }
    bodies.read(req, LINK_PROBE_MAX_BYTES).then(
      (body) => {
        metrics.bytesIn.inc({ route: 'link-probe' }, body.byteLength);
        res.writeHead(204).end();
      },
      refuse,
    );
  }

  return {
    endpoints: [{ method: 'POST', matches: (path) => path === LINK_PROBE_PATH, handle: linkProbe }],
    route(path: string, req: IncomingMessage, _hints: RouteHints): Route | undefined {
      const m = INFER_RE.exec(path);
      if (!m) return undefined;
      const url = req.url ?? '/';
      const cut = url.includes('?') ? new URL(url, 'http://x').searchParams.get('cut') ?? undefined : undefined;
      return { name: 'tandem', front: 'tandem', maxBody: settings.maxBody, model: pathSegment(m[1] ?? ''), ...(cut ? { cut } : {}) };
    },
    error: plainError,
  };
}
