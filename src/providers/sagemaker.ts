/**
 * AWS SageMaker real-time endpoints through `@aws-sdk/client-sagemaker-runtime`
 * InvokeEndpoint. Credentials come from the SDK's default provider chain (environment, SSO,
 * web identity, role assumption, instance metadata); Tandem's config never holds AWS keys.
 * The model and cut travel in `CustomAttributes`, which SageMaker forwards to the container.
 */
import { Transform, type Readable } from 'node:stream';
import type { SageMakerRuntimeClient, SageMakerRuntimeClientConfig } from '@aws-sdk/client-sagemaker-runtime';
import { LazyValue } from '../lazy.js';
import { readCaFile } from './ca.js';
import { callScope, raceAbort } from './deadline.js';
import { credentialError, errorForStatus, ProviderError, retryAfterOf } from './errors.js';
import { awsWebIdentityCredentials } from './identity/aws.js';
import { identityFitError } from './identity/errors.js';
import { answerTooLarge, MAX_ANSWER_BYTES } from './http.js';
import { awsHandlerOnRoute, proxyFailure, ProxyRoute } from './proxy.js';
import { TENSOR_CONTENT_TYPE } from '../codec/index.js';
import { computeFromAttributes, decodeResponse, encodeImageRequest, encodeRequest, timing } from './payload.js';
import type { InferOptions, InferRequest, InferResponse, ProviderClient, SageMakerEndpointConfig } from './types.js';
import { IMAGE_INPUT_KEY, PIPELINE_KEY } from './wire/image.js';

interface AwsServiceError {
  name: string;
  message: string;
  $metadata?: { httpStatusCode?: number };
  $fault?: 'client' | 'server';
  /** The raw answer (smithy's HttpResponse; non-enumerable), headers as Node gives them. */
  $response?: { headers?: Record<string, string> };
}

type SageMakerSdk = typeof import('@aws-sdk/client-sagemaker-runtime');
// Loaded by the first SageMaker call, so that importing Tandem does not pay for it.
const sageMakerSdk = new LazyValue<SageMakerSdk>(() => import('@aws-sdk/client-sagemaker-runtime'));

function isServiceError(e: unknown): e is AwsServiceError {
  return e instanceof Error && '$metadata' in e;
}

/** The part of smithy's raw HttpResponse the answer cap reads and replaces. */
interface RawAnswer {
  headers?: Record<string, string | undefined>;
  body?: unknown;
}

/**
 * Refuses an answer larger than `limit` before the SDK buffers it: one whose Content-Length
 * says so at once, a streamed one as soon as it passes the limit. The SDK collects the whole
 * body into memory, and an endpoint's word on its size is not to be trusted on a small
 * device. Installed in the deserialize step below the SDK's deserializer, where the raw
 * answer passes by; only an answer without a length pays for the extra stream.
 */
export function capAnswerBody(response: RawAnswer, limit: number): void {
  const announced = Number(response.headers?.['content-length']);
  const body = response.body as Readable | undefined;
  if (Number.isSafeInteger(announced) && announced >= 0) {
    if (announced <= limit) return;
    body?.destroy?.();
    throw answerTooLarge(`of ${announced} bytes (Content-Length)`, limit);
  }
  if (!body || typeof body.pipe !== 'function') return;
  let size = 0;
  const counted = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      size += chunk.byteLength;
      if (size > limit) done(answerTooLarge('streamed so far', limit));
      else done(null, chunk);
    },
  });
  counted.on('error', () => body.destroy());
  body.on('error', (error) => counted.destroy(error));
  response.body = body.pipe(counted);
}

type RequestHandlerInput = SageMakerRuntimeClientConfig['requestHandler'];

/**
 * The SDK's request handler with an https agent that trusts exactly `ca` (the endpoint's
 * `caFile`). Given as the handler's options, not a handler: the SDK then builds its
 * NodeHttpHandler as it would anyway (its keep-alive agent, 50 sockets, with `ca` added) and
 * destroys that agent with the client, and Tandem loads no smithy package of its own.
 * Handler options from `sdkConfig` (timeouts…) are kept; a handler instance, a provider of
 * options, or an agent instance among the options brings its own trust and is left alone.
 */
function trustingHandler(given: RequestHandlerInput, ca: Buffer): RequestHandlerInput {
  if (typeof given === 'function' || (given !== undefined && typeof (given as { handle?: unknown }).handle === 'function')) return given;
  const options = (given ?? {}) as Record<string, unknown>;
  const agent = options['httpsAgent'];
  if (agent !== undefined && typeof (agent as { destroy?: unknown }).destroy === 'function') return given;
  return { ...options, httpsAgent: { ...(agent as Record<string, unknown> | undefined), ca } };
}

export class SageMakerClient implements ProviderClient {
  private readonly route: ProxyRoute;
  private readonly client: LazyValue<{ sdk: SageMakerSdk; client: SageMakerRuntimeClient }>;

  /** `sdkConfig` overrides the SDK's configuration (credentials in tests, a custom agent…). */
  constructor(readonly endpoint: SageMakerEndpointConfig, sdkConfig: SageMakerRuntimeClientConfig = {}) {
    if (!endpoint.target && !endpoint.name) throw new ProviderError('PROVIDER_CONFIG', 'a SageMaker endpoint needs a target (the endpoint name)');
    const unfit = identityFitError(endpoint.name, endpoint.kind, endpoint.identity);
    if (unfit) throw unfit;
    // Federation (docs/guide/identity.md): the SDK's web identity provider instead of its default chain.
    const identity = endpoint.identity && 'aws' in endpoint.identity ? { credentials: awsWebIdentityCredentials(endpoint.name, endpoint.identity.aws) } : {};
    // Every connection's proxy (src/providers/proxy.ts): the endpoint's, and STS's.
    const route = (this.route = new ProxyRoute(endpoint.proxy, `endpoint "${endpoint.name}"`, endpoint.proxyEnv));
    this.client = new LazyValue(async () => {
      let sdk: SageMakerSdk;
      try {
        sdk = await sageMakerSdk.get();
      } catch (error) {
        throw new ProviderError('PROVIDER_CONFIG', `endpoint "${endpoint.name}": cannot load @aws-sdk/client-sagemaker-runtime: ${error instanceof Error ? error.message : String(error)}`, { cause: error, details: { endpoint: endpoint.name } });
      }
      const ca = endpoint.caFile === undefined ? undefined : await readCaFile(endpoint.name, endpoint.caFile);
      const routed = await awsHandlerOnRoute(sdkConfig.requestHandler, route, ca);
      try {
        const client = new sdk.SageMakerRuntimeClient({
          region: endpoint.region,
          ...(endpoint.url ? { endpoint: endpoint.url } : {}),
          // Retries are the runtime's decision (another endpoint or local may be better).
          maxAttempts: 1,
          ...identity,
          ...sdkConfig,
          ...(routed ? { requestHandler: routed } : ca ? { requestHandler: trustingHandler(sdkConfig.requestHandler, ca) } : {}),
        });
        client.middlewareStack.add(
          (next) => async (args) => {
            const result = await next(args);
            capAnswerBody(result.response as RawAnswer, MAX_ANSWER_BYTES);
            return result;
          },
          { step: 'deserialize', priority: 'low', name: 'tandemAnswerCap' },
        );
        return { sdk, client };
      } catch (error) {
        throw new ProviderError('PROVIDER_CONFIG', `endpoint "${endpoint.name}": cannot create the SageMaker client: ${error instanceof Error ? error.message : String(error)}`, { cause: error, details: { endpoint: endpoint.name } });
      }
    });
  }

  async infer(request: InferRequest, options: InferOptions = {}): Promise<InferResponse> {
    const scope = callScope(options);
    try {
      // Before the clock starts: the one-off SDK load is not part of this call's encode time.
      const { sdk, client } = await raceAbort(this.client.get(), { signal: scope.signal });
      // Resolved here, not inside send(), so that a failure of the credential chain (an STS
      // refusal of a web identity token, say) is not mistaken for the endpoint's answer. The
      // provider is memoized: STS is asked once, then again only near expiry.
      try {
        await raceAbort(client.config.credentials(), { signal: scope.signal });
      } catch (error) {
        if (scope.signal.aborted) throw error;
        const status = isServiceError(error) ? error.$metadata?.httpStatusCode : undefined;
        // The federated provider's failures come classified already.
        throw proxyFailure(error) ?? (error instanceof ProviderError ? error : credentialError(this.endpoint.name, error, status, error instanceof Error ? error.name : undefined));
      }
      const start = performance.now();
      const image = encodeImageRequest(request);
      const enc = image ?? encodeRequest(request, this.endpoint.wire ?? 'binary');
      const attrs = [`model=${request.model}`];
      if (request.cut) attrs.push(`cut=${request.cut}`);
      // Encoded offload: the image is the body; its pipeline's fingerprint rides in the attributes.
      if (image && request.image) attrs.push(`${PIPELINE_KEY}=${request.image.pipelineSha256}`, `${IMAGE_INPUT_KEY}=${request.image.input}`);
      const command = new sdk.InvokeEndpointCommand({
        EndpointName: this.endpoint.target ?? this.endpoint.name,
        Body: enc.body,
        ContentType: enc.contentType,
        Accept: image ? TENSOR_CONTENT_TYPE : enc.contentType,
        CustomAttributes: attrs.join(';'),
      });
      const encoded = performance.now();
      let out;
      try {
        out = await client.send(command, { abortSignal: scope.signal });
      } catch (error) {
        // A 2xx status on an error is the answer failing in transit (cut off, undecodable), not a refusal.
        if (isServiceError(error) && error.$metadata?.httpStatusCode !== undefined && error.$metadata.httpStatusCode >= 300) {
          const status = error.$metadata.httpStatusCode;
          const mapped = errorForStatus(this.endpoint.name, status, error.name === 'ModelError' ? 'ModelError' : error.name, error.message);
          throw new ProviderError(mapped.code, mapped.message, { cause: error, status, details: { endpoint: this.endpoint.name, awsError: error.name }, retryAfterMs: retryAfterOf(error.$response?.headers) });
        }
        throw error;
      }
      const received = performance.now();
      const body = out.Body ?? new Uint8Array(0);
      const decoded = decodeResponse(this.endpoint.name, body);
      const remote = computeFromAttributes(out.CustomAttributes) ?? decoded.remoteMs;
      return { outputs: decoded.outputs, timing: timing({ start, encoded, received, decoded: performance.now() }, remote), bytesSent: enc.body.byteLength, bytesReceived: body.byteLength, ...(enc.compression ? { compression: enc.compression } : {}) };
    } catch (error) {
      throw scope.classify(error, this.endpoint.name);
    } finally {
      scope.dispose();
    }
  }

  async close(): Promise<void> {
    (await this.client.peek())?.client.destroy();
    await this.route.destroy();
  }
}
