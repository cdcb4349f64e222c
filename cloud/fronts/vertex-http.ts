/**
 * Vertex AI's prediction API over REST, as this service emulates it for the Vertex SDK's REST
 * transport: `POST /v1/projects/{p}/locations/{l}/endpoints/{e}:predict` and `:rawPredict`
 * (also `v1beta1`), with a bearer token and Google's JSON errors (google.rpc.ErrorInfo carrying
 * the service's code). The gRPC transport is `vertex-grpc.ts`.
 */
import type { IncomingMessage } from 'node:http';
import { verifyBearer } from '../auth.js';
import { imageHint } from '../encoded.js';
import type { ErrorSummary } from '../errors.js';
import { GRPC_STATUS, type Route } from '../front.js';
import { header, pathSegment, type ErrorReply, type FrontContext, type HttpFront, type RouteHints } from './http-front.js';

const ENDPOINT_RE = /^\/v1(?:beta1)?\/projects\/[^/]+\/locations\/[^/]+\/endpoints\/([^/:]+):(predict|rawPredict)$/;

/** Google's JSON error; the stable code travels as google.rpc.ErrorInfo's reason, where Google's clients read it. */
function googleError(e: ErrorSummary): ErrorReply {
  const { status, code, message } = e;
  return { status, body: { error: { code: status, message: `${code}: ${message}`, status: GRPC_STATUS[status] ?? 'UNKNOWN', details: [{ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: code, domain: 'tandem.cloud' }] } } };
}

export function vertexHttpFront(ctx: FrontContext): HttpFront {
  const { repo, settings } = ctx;
  return {
    route(path: string, req: IncomingMessage, hints: RouteHints): Route | undefined {
      const m = ENDPOINT_RE.exec(path);
      if (!m) return undefined;
      const endpoint = pathSegment(m[1] ?? '');
      const model = hints.model ?? (repo.has(endpoint) ? endpoint : undefined);
      const raw = m[2] === 'rawPredict';
      // Encoded offload (rawPredict): the fingerprint in x-tandem-pipeline, the image in the httpBody.
      return { name: `vertex-${m[2] ?? 'predict'}`, front: 'vertex', maxBody: settings.maxBody, vertexRaw: raw, ...(model ? { model } : {}), ...(raw ? imageHint(req) : {}) };
    },
    authorize(req) {
      verifyBearer(req.headers, settings.credentials.vertexToken);
    },
    finish(req, r, parsed, headers, payload) {
      if (!r.vertexRaw || !header(req, 'content-type')?.startsWith('application/json') || parsed.family === 'vertex') return payload;
      // gax REST sends rawPredict as JSON {httpBody}; it expects an HttpBody JSON back.
      const wrapped = Buffer.from(JSON.stringify({ contentType: String(headers['content-type']), data: Buffer.from(payload).toString('base64') }));
      headers['content-type'] = 'application/json';
      return wrapped;
    },
    error: googleError,
  };
}
