/**
 * Alibaba Cloud PAI-EAS as this service emulates it for EAS clients: `POST /api/predict/{service}`,
 * with the service token (or an EAS request signature) in `Authorization`, and plain JSON errors.
 */
import type { IncomingMessage } from 'node:http';
import { verifyEas } from '../auth.js';
import { imageHint } from '../encoded.js';
import type { Route } from '../front.js';
import { pathSegment, plainError, type FrontContext, type HttpFront, type RouteHints } from './http-front.js';

const SERVICE_RE = /^\/api\/predict\/([^/]+)$/;

export function easFront(ctx: FrontContext): HttpFront {
  const { repo, settings } = ctx;
  return {
    route(path: string, req: IncomingMessage, hints: RouteHints): Route | undefined {
      const m = SERVICE_RE.exec(path);
      if (!m) return undefined;
      const service = pathSegment(m[1] ?? '');
      const model = hints.model ?? (repo.has(service) ? service : undefined);
      // Encoded offload: content-type image/*, the fingerprint in x-tandem-pipeline.
      return { name: 'eas-front', front: 'eas', maxBody: settings.maxBody, ...(model ? { model } : {}), ...imageHint(req) };
    },
    verify(req, _r, path, body) {
      verifyEas({ method: req.method ?? 'POST', path, headers: req.headers, body }, settings.credentials.easToken, settings.credentials.easSigning);
      return undefined;
    },
    error: plainError,
  };
}
