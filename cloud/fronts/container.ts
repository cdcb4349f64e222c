/**
 * The container contracts of SageMaker and Vertex AI: the health routes (`/ping`, Vertex's
 * AIP_HEALTH_ROUTE) and the prediction routes (`/invocations`, AIP_PREDICT_ROUTE) a platform
 * calls inside its own network, so without credentials. Errors carry AWS's error type, which
 * SageMaker's runtime reads from its container.
 */
import type { IncomingMessage } from 'node:http';
import type { Route } from '../front.js';
import { answerHealth, type FrontContext, type HttpFront, type RouteHints } from './http-front.js';
import { awsError, computeAttribute, SAGEMAKER_MAX_BODY_BYTES } from './sagemaker.js';

export function containerFront(ctx: FrontContext): HttpFront {
  const { health, predict } = ctx.settings.vertexRoutes;
  const maxBody = ctx.settings.maxBody;
  return {
    endpoints: [{ method: 'GET', matches: (path) => path === '/ping' || path === health, handle: (x) => answerHealth(x.res, ctx) }],
    route(path: string, _req: IncomingMessage, hints: RouteHints): Route | undefined {
      if (path === '/invocations') {
        const model = hints.target ?? hints.model;
        return { name: 'sagemaker-container', front: 'container', maxBody: SAGEMAKER_MAX_BODY_BYTES, ...(model ? { model } : {}) };
      }
      if (path === predict) return { name: 'vertex-container', front: 'container', maxBody, ...(hints.model ? { model: hints.model } : {}) };
      return undefined;
    },
    finish(_req, r, _parsed, headers, payload, compute) {
      if (r.name === 'sagemaker-container') computeAttribute(headers, compute);
      return payload;
    },
    error: awsError,
  };
}
