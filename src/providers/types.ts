/**
 * The one interface every cloud endpoint kind implements. The edge runtime and the planner
 * only ever see this; the SDK behind each kind stays inside its module.
 */
import type { TensorMap } from '../tensor/index.js';
import type { CompressionReport } from '../codec/index.js';
import type { IdentityConfig } from './identity/config.js';
import type { ProxyEnvironment, ProxySetting } from './proxy.js';
import type { EncodedImage } from './wire/image.js';

export type { EncodedImage };

/**
 * How an endpoint is declared in configuration (validated with zod in edge/config.ts): the
 * fields every kind shares, and each kind's own (`kind` tells which).
 */
export type EndpointConfig = SageMakerEndpointConfig | VertexEndpointConfig | PaiEasEndpointConfig | OipEndpointConfig;

export type ProviderKind = EndpointConfig['kind'];

/** The endpoint configuration of one kind. */
export type EndpointConfigOf<K extends ProviderKind> = Extract<EndpointConfig, { kind: K }>;

interface EndpointCommon {
  /** Unique name used in plans, logs and residency policies. */
  name: string;
  /** Cloud region the endpoint runs in, e.g. `eu-central-1`, `cn-shanghai`. */
  region: string;
  /** Base URL override (local emulation, private link). Required for `oip` and `pai-eas`. */
  url?: string;
  /**
   * Body encoding: `binary` (default) sends Tandem msgpack tensor payloads (the OIP binary
   * extension for `oip`); `json` sends OIP v2 JSON, or Vertex `instances` through `predict`.
   */
  wire?: 'binary' | 'json';
  /**
   * Path to a PEM bundle of CA certificates that this endpoint's TLS certificate is checked
   * against, instead of the default roots (like curl's `--cacert`): for a private link or a
   * `tandem cloud serve` whose certificate a private CA signed. Only this endpoint trusts them,
   * on every transport (node:https, the AWS SDK's handler, Vertex gRPC and REST); the
   * process-wide `NODE_EXTRA_CA_CERTS` / `GRPC_DEFAULT_SSL_ROOTS_FILE_PATH` are not consulted
   * for it. Read on the client's first call; a file that cannot be read or holds no PEM
   * certificate fails that call (and the next, until it is fixed) with `PROVIDER_CONFIG`.
   * Unused over `http://`.
   */
  caFile?: string;
  /**
   * The outbound proxy for this endpoint's connections, its credential service's included: a
   * proxy URL (`http://[user:password@]host:port`), used whatever NO_PROXY says; `false` or
   * `'none'` for direct connections whatever the environment says. Absent: HTTPS_PROXY /
   * HTTP_PROXY and NO_PROXY decide (src/providers/proxy.ts, docs/guide/network.md).
   */
  proxy?: ProxySetting;
  /**
   * The environment's proxy variables (HTTPS_PROXY / HTTP_PROXY / NO_PROXY) that apply where
   * `proxy` is absent, as `proxyEnvironment` reads them. The library reads no environment: the
   * config loaders and the CLI fill this in; an embedder passes `proxyEnvironment(env)` itself.
   * Absent: no proxy but `proxy`.
   */
  proxyEnv?: ProxyEnvironment;
  /**
   * Identity federation (docs/guide/identity.md): the role this endpoint's client assumes with
   * a short-lived token, through the cloud SDK's own credential code. An `aws` identity for
   * `sagemaker`, a `gcp` one for `vertex`; `pai-eas` and `oip` take none.
   */
  identity?: IdentityConfig;
  /** Prices for the cost objective. */
  pricePerRequest?: number;
  pricePerGB?: number;
}

/** An AWS SageMaker real-time endpoint. Credentials come from the AWS SDK's chain, never from here. */
export interface SageMakerEndpointConfig extends EndpointCommon {
  kind: 'sagemaker';
  /** The SageMaker endpoint name (default: `name`). */
  target?: string;
}

/** A Google Vertex AI endpoint. */
export interface VertexEndpointConfig extends EndpointCommon {
  kind: 'vertex';
  /** The endpoint id (required). */
  target?: string;
  /** The Google Cloud project (required). */
  project?: string;
  /** A static bearer token (the Vertex emulation); without one, Application Default Credentials. */
  token?: string;
  /**
   * The SDK's transport, `grpc` or `rest` (its HTTP/1.1 fallback). Default: `rest` with `url`,
   * `grpc` without (the SDK's own default against Google). With `url`, its scheme says whether
   * the channel is encrypted, for either transport: `https://` is TLS (gRPC checks the
   * certificate against its default roots, `GRPC_DEFAULT_SSL_ROOTS_FILE_PATH`, or `caFile`),
   * `http://` plaintext (gRPC then sends the bearer token as call metadata).
   */
  transport?: 'grpc' | 'rest';
}

/** An Alibaba Cloud PAI-EAS service. */
export interface PaiEasEndpointConfig extends EndpointCommon {
  kind: 'pai-eas';
  /** The EAS service name (default: the request's model). */
  target?: string;
  /** The service token; without one, requests are signed with the client's signing keys. Never AWS keys. */
  token?: string;
}

/** An Open Inference Protocol v2 server (KServe, Triton, `tandem cloud serve`). */
export interface OipEndpointConfig extends EndpointCommon {
  kind: 'oip';
}

export interface InferRequest {
  /** Model name as served by the cloud service. */
  model: string;
  /** Cut id for split inference; absent for a whole-model request. */
  cut?: string;
  inputs: TensorMap;
  /** Optional wire compression of the cut tensors. */
  compression?: 'none' | 'float16' | 'int8';
  requestId?: string;
  /**
   * Encoded offload: the request's image as it was given, sent instead of `inputs` by every
   * client (`inputs` still holds its tensor, for a server that refuses the image). Whole-model
   * requests only; the server must hold a package whose pipeline has the same fingerprint.
   */
  image?: EncodedImage;
}

export interface InferTiming {
  /** Time to serialise and hand the request to the transport. */
  encodeMs: number;
  /** Wall time from first byte sent to last byte received, minus the server's compute. */
  networkMs: number;
  /** Compute time as the server reports it (0 when it does not). */
  remoteMs: number;
  decodeMs: number;
  totalMs: number;
}

export interface InferResponse {
  outputs: TensorMap;
  timing: InferTiming;
  bytesSent: number;
  bytesReceived: number;
  /** What the request's lossy cut compression cost, per tensor (the codec's report). */
  compression?: Record<string, CompressionReport>;
}

export interface InferOptions {
  signal?: AbortSignal;
  /** Absolute deadline, epoch milliseconds. */
  deadline?: number;
}

export interface ProviderClient {
  readonly endpoint: EndpointConfig;
  infer(request: InferRequest, options?: InferOptions): Promise<InferResponse>;
  /**
   * Optional: moves about `bytes` bytes to the endpoint and back as cheaply as it can (no
   * inference), resolving with the wall time in ms; the planner's out-of-band link probe.
   * Rejects with a `PROVIDER_VALIDATION` error (status 404/405) when the server has no probe
   * route.
   */
  probeLink?(bytes: number, options?: InferOptions): Promise<number>;
  close(): Promise<void>;
}
