/**
 * The SageMaker runtime API as this service emulates it, for the SageMaker SDK:
 * `POST /endpoints/{name}/invocations`, signed with AWS SigV4 over the body, with AWS-shaped
 * errors (`x-amzn-errortype`; a model's refusal as SageMaker's 424 ModelError). Also what the
 * container contract shares with it: the body limit, the target-model and custom-attributes
 * headers, and the AWS error shape.
 */
import type { IncomingMessage } from 'node:http';
import { verifySigV4 } from '../auth.js';
import { imageHint } from '../encoded.js';
import type { ErrorSummary } from '../errors.js';
import type { Route } from '../front.js';
import { header, pathSegment, type ErrorReply, type FrontContext, type HttpFront, type RouteHints } from './http-front.js';

/** SageMaker's own request limit for real-time endpoints. */
export const SAGEMAKER_MAX_BODY_BYTES = 6 * 1024 * 1024;

const ENDPOINT_RE = /^\/endpoints\/([^/]+)\/invocations$/;

const AWS_ERROR_TYPE: Readonly<Record<number, string>> = {
  400: 'ValidationError', 401: 'UnrecognizedClientException', 403: 'InvalidSignatureException', 404: 'ValidationError', 413: 'ValidationError',
  429: 'ThrottlingException', 500: 'InternalFailure', 501: 'InternalFailure', 503: 'ServiceUnavailable', 504: 'InternalDependencyException',
};

const ERROR_TYPE_SUFFIX = ':http://internal.amazon.com/coral/com.amazon.sagemaker/';

/** `k=v` pairs of the SageMaker custom attributes header (`;` or `,` separated). */
export function customAttributes(value: string | string[] | undefined): Record<string, string> {
  const text = Array.isArray(value) ? value.join(';') : value ?? '';
  const out: Record<string, string> = {};
  for (const part of text.split(/[;,]/)) {
    const i = part.indexOf('=');
    if (i > 0) out[part.slice(0, i).trim()] = part.slice(i + 1).trim();
  }
  return out;
}

/** The model X-Amzn-SageMaker-Target-Model names (a multi-model endpoint's artifact name). */
export function targetModel(req: IncomingMessage): string | undefined {
  return header(req, 'x-amzn-sagemaker-target-model')?.replace(/(\.tar\.gz|\.onnx)$/, '');
}

/** The plain shape, with the AWS error type SageMaker's clients read. */
export function awsError(e: ErrorSummary, headers: Record<string, string | number>): ErrorReply {
  const { status, code, message } = e;
  headers['x-amzn-errortype'] = `${AWS_ERROR_TYPE[status] ?? 'InternalFailure'}${ERROR_TYPE_SUFFIX}`;
  return { status, body: { code, message, error: { code, message, status } } };
}

/** Where an answer says how long the run took, in the header SageMaker passes through. */
export function computeAttribute(headers: Record<string, string | number>, compute: string): void {
  headers['x-amzn-sagemaker-custom-attributes'] = `tandem-compute-ms=${compute}`;
}

export function sagemakerFront(ctx: FrontContext): HttpFront {
  const { repo, settings } = ctx;
  return {
    route(path: string, req: IncomingMessage, hints: RouteHints): Route | undefined {
      const m = ENDPOINT_RE.exec(path);
      if (!m) return undefined;
      const endpoint = pathSegment(m[1] ?? '');
      const model = hints.target ?? hints.model ?? (repo.has(endpoint) ? endpoint : undefined);
      // Encoded offload: ContentType image/*, the fingerprint among the custom attributes.
      const image = imageHint(req, customAttributes(req.headers['x-amzn-sagemaker-custom-attributes']));
      return { name: 'sagemaker-front', front: 'sagemaker', maxBody: SAGEMAKER_MAX_BODY_BYTES, ...(model ? { model } : {}), ...image };
    },
    verify(req, _r, path, body) {
      const url = new URL(req.url ?? '/', 'http://x');
      const query: Record<string, string> = {};
      url.searchParams.forEach((v, k) => { query[k] = v; });
      return verifySigV4({ method: req.method ?? 'POST', path, query, headers: req.headers, body }, settings.credentials.aws, 'sagemaker');
    },
    finish(_req, _r, _parsed, headers, payload, compute) {
      computeAttribute(headers, compute);
      return payload;
    },
    error(e, headers) {
      if (e.code !== 'CLOUD_MODEL_ERROR') return awsError(e, headers);
      // What SageMaker's runtime answers when the container refuses the inputs: 424 ModelError
      // carrying the container's own status and message.
      const { status, message } = e;
      headers['x-amzn-errortype'] = `ModelError${ERROR_TYPE_SUFFIX}`;
      return { status: 424, body: { ErrorCode: 'CLIENT_ERROR_FROM_MODEL', OriginalStatusCode: status, OriginalMessage: message, Message: `Received client error (${status}) from primary with message "${message}"` } };
    },
  };
}
