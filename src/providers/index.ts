/**
 * Provider clients behind one interface, and the registry that makes one per endpoint kind.
 * Each client loads its SDK on its first call, not here: importing this module costs no SDK.
 */
import type { SageMakerRuntimeClientConfig } from '@aws-sdk/client-sagemaker-runtime';
import type { ClientOptions } from 'google-gax';
import { ProviderError } from './errors.js';
import { OipClient } from './oip.js';
import { easSigningFromEnv, PaiEasClient, type EasSigningKey } from './pai-eas.js';
import { SageMakerClient } from './sagemaker.js';
import type { EndpointConfig, EndpointConfigOf, ProviderClient, ProviderKind } from './types.js';
import { VertexClient } from './vertex.js';

export type {
  EndpointConfig,
  EndpointConfigOf,
  InferOptions,
  InferRequest,
  InferResponse,
  InferTiming,
  OipEndpointConfig,
  PaiEasEndpointConfig,
  ProviderClient,
  ProviderKind,
  SageMakerEndpointConfig,
  VertexEndpointConfig,
} from './types.js';
export { ProviderError, type ProviderErrorCode } from './errors.js';
// Identity federation (docs/guide/identity.md): the configuration, for the config loaders.
export {
  IDENTITY_CLOUD_OF, identityMismatch, IdentitySchema, resolveIdentityRef, withAbsolutePaths,
  type AlibabaIdentity, type AwsIdentity, type GcpIdentity, type IdentityConfig, type IdentityFailureReason,
} from './identity/index.js';
export { cutEncodingsOf } from './payload.js';
export { noProxyMatcher, proxyEnvironment, ProxyRoute, ProxySettingSchema, withProxyEnvironment, type ProxyEnvironment, type ProxySetting } from './proxy.js';
// The wire formats, for the cloud service's fronts that answer them as the clients speak them.
export { easSignature } from './wire/eas.js';
export {
  canonicalJson, IMAGE_INPUT_HEADER, IMAGE_INPUT_KEY, IMAGE_META_KEY, isFingerprint, OIP_PIPELINE_PARAMETER, parseContentType, PIPELINE_HEADER, PIPELINE_KEY, pipelineFingerprint,
  sniffImageType, type EncodedImage, type ImageContentType,
} from './wire/image.js';
export { decodeOipImageRequest, type OipImageRequest } from './wire/oip.js';
export { decodeOipRequest, encodeOipResponse, LINK_PROBE_MAX_BYTES, LINK_PROBE_PATH, OIP_HEADER_LENGTH, oipDatatype, type OipDecoded, type OipEncoded, type OipLimits } from './wire/oip.js';
export { instancesToTensors, tensorsToPredictions, toProtoValue, VERTEX_MAX_MESSAGE_BYTES, type InstanceInput, type ProtoValueInit } from './wire/vertex.js';
export { easSigningFromEnv, OipClient, PaiEasClient, SageMakerClient, VertexClient, type EasSigningKey };

/** SDK-level overrides, for tests and special deployments; production needs none. */
export interface ProviderOverrides {
  sagemaker?: SageMakerRuntimeClientConfig;
  vertex?: ClientOptions;
  /**
   * PAI-EAS request signing keys. The library reads no environment: the edge agent and the CLI
   * fill this from `TANDEM_EAS_ACCESS_KEY_ID` / `TANDEM_EAS_ACCESS_KEY_SECRET` ({@link easSigningFromEnv}).
   */
  easSigning?: EasSigningKey;
  /** Extra headers for OIP servers behind a gateway (e.g. `authorization`). */
  oipHeaders?: Record<string, string>;
}

type ProviderFactory<K extends ProviderKind> = (config: EndpointConfigOf<K>, overrides: ProviderOverrides) => ProviderClient;

/** One factory per kind: adding a kind is adding its config type to the union and an entry here. */
const registry: { [K in ProviderKind]: ProviderFactory<K> } = {
  sagemaker: (config, overrides) => new SageMakerClient(config, overrides.sagemaker),
  vertex: (config, overrides) => new VertexClient(config, overrides.vertex),
  'pai-eas': (config, overrides) => new PaiEasClient(config, overrides.easSigning),
  oip: (config, overrides) => new OipClient(config, overrides.oipHeaders),
};

/** The factory for `kind`, typed so that it takes exactly that kind's config. */
function factoryFor<K extends ProviderKind>(kind: K): ProviderFactory<K> | undefined {
  // A config from YAML or JavaScript may name any kind; only the registry's own keys count.
  return Object.hasOwn(registry, kind) ? registry[kind] : undefined;
}

/** Creates the client for `config.kind`. Throws a PROVIDER_CONFIG error for an unusable config. */
export function createProviderClient(config: EndpointConfig, overrides: ProviderOverrides = {}): ProviderClient {
  const create = factoryFor(config.kind);
  if (!create) throw new ProviderError('PROVIDER_CONFIG', `unknown endpoint kind "${String((config as { kind: unknown }).kind)}"`);
  return create(config, overrides);
}
