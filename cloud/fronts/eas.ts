/**
 * Alibaba Cloud PAI-EAS as this service emulates it for EAS clients: `POST /api/predict/{service}`,
 * with the service token (or an EAS request signature) in `Authorization`, and plain JSON errors.
 * With the token, the model is `x-tandem-model`'s, else the service's name when it is a served
 * model's, else the body's (a Tandem payload's meta). A signed request is routed only by what its
 * signature covers (the body's model, else the service's): its `x-tandem-model`/`x-tandem-cut` must agree.
 */
import type { IncomingMessage } from 'node:http';
import { easSigned, verifyEas } from '../auth.js';
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
      // An EAS signature covers the method, Content-MD5, Content-Type, Date and path, not
      // x-tandem-model or x-tandem-cut: a signed request is routed by the model and cut its body
      // names, else by the service in its path; the headers are only checked against those (core.ts).
      if (easSigned(req.headers, settings.credentials.easSigning)) {
        const signedOnly = { ...(hints.model !== undefined ? { model: hints.model } : {}), ...(hints.cut !== undefined ? { cut: hints.cut } : {}), ...(repo.has(service) ? { service } : {}) };
        return { name: 'eas-front', front: 'eas', maxBody: settings.maxBody, signedOnly, ...imageHint(req) };
      }
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
