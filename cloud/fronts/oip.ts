/**
 * The Open Inference Protocol v2 (KServe, Triton): `POST /v2/models/{m}[/versions/{v}]/infer`
 * with a JSON body or the binary tensor extension (a version names a cut), the health and
 * metadata routes, and plain JSON errors. No credentials: OIP leaves them to the platform.
 */
import type { IncomingMessage } from 'node:http';
import { OIP_HEADER_LENGTH, oipDatatype } from '../../src/providers/index.js';
import { oipImageHint } from '../encoded.js';
import { CloudError } from '../errors.js';
import type { Route } from '../front.js';
import type { TensorInfo } from '../models.js';
import { answerHealth, header, pathSegment, plainError, type FrontContext, type HttpEndpoint, type HttpExchange, type HttpFront, type RouteHints } from './http-front.js';

const INFER_RE = /^\/v2\/models\/([^/]+)(?:\/versions\/([^/]+))?\/infer$/;
const MODEL_META_RE = /^\/v2\/models\/[^/]+(\/ready)?$/;
const HEALTH = new Set(['/v2/health/ready', '/v2/health/live', '/v2/models/ready']);

const tensorMeta = (t: TensorInfo): { name: string; datatype: string; shape: number[] } =>
  ({ name: t.name, datatype: oipDatatype(t.dtype), shape: t.shape.map((d) => (typeof d === 'number' ? d : -1)) });

export function oipFront(ctx: FrontContext): HttpFront {
  const { repo, settings } = ctx;

  /** A model's metadata: its inputs and outputs, as the whole model has them. */
  function modelMeta({ res, path, refuse }: HttpExchange): void {
    let name: string;
    try {
      name = pathSegment(path.split('/')[3] ?? '');
    } catch (error) {
      refuse(error);
      return;
    }
    if (!repo.has(name)) {
      refuse(new CloudError(404, 'CLOUD_MODEL_NOT_FOUND', `no model named "${name}"`));
      return;
    }
    repo.partition(name, null).then(
      (p) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({
        name, versions: [], platform: 'onnxruntime_onnx', inputs: p.inputs.map(tensorMeta), outputs: p.outputs.map(tensorMeta),
      })),
      refuse,
    );
  }

  const endpoints: HttpEndpoint[] = [
    // Health first: `/v2/models/ready` would otherwise be the metadata of a model named "ready".
    { method: 'GET', matches: (path) => HEALTH.has(path), handle: (x) => answerHealth(x.res, ctx) },
    { method: 'GET', matches: (path) => MODEL_META_RE.test(path), handle: modelMeta },
    {
      method: 'GET',
      matches: (path) => path === '/v2',
      // The server's metadata.
      handle: ({ res }) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ name: 'tandem', version: '1', extensions: ['binary_tensor_data'] })),
    },
  ];

  return {
    endpoints,
    route(path: string, req: IncomingMessage, _hints: RouteHints): Route | undefined {
      const m = INFER_RE.exec(path);
      if (!m) return undefined;
      const version = m[2] ? pathSegment(m[2]) : undefined;
      // Encoded offload: an image is a BYTES input of a binary request.
      return { name: 'oip', front: 'oip', maxBody: settings.maxBody, model: pathSegment(m[1] ?? ''), ...(version ? { cut: version } : {}), ...oipImageHint(header(req, OIP_HEADER_LENGTH)) };
    },
    error: plainError,
  };
}
