/**
 * Provider clients behind one interface, and the factory that picks one per endpoint kind.
 */
import type { SageMakerRuntimeClientConfig } from '@aws-sdk/client-sagemaker-runtime';
import type { ClientOptions } from 'google-gax';
import { ProviderError } from './errors.js';
import { OipClient } from './oip.js';
import { PaiEasClient, type EasSigningKey } from './pai-eas.js';
import { SageMakerClient } from './sagemaker.js';
import type { EndpointConfig, ProviderClient } from './types.js';
import { VertexClient } from './vertex.js';

export type { EndpointConfig, InferOptions, InferRequest, InferResponse, InferTiming, ProviderClient, ProviderKind } from './types.js';
export { ProviderError, type ProviderErrorCode } from './errors.js';
export { OipClient, PaiEasClient, SageMakerClient, VertexClient, type EasSigningKey };

/** SDK-level overrides, for tests and special deployments; production needs none. */
export interface ProviderOverrides {
  sagemaker?: SageMakerRuntimeClientConfig;
  vertex?: ClientOptions;
  /** PAI-EAS request signing keys (default: TANDEM_EAS_ACCESS_KEY_ID / TANDEM_EAS_ACCESS_KEY_SECRET). */
  easSigning?: EasSigningKey;
  /** Extra headers for OIP servers behind a gateway (e.g. `authorization`). */
  oipHeaders?: Record<string, string>;
}

/** Creates the client for `config.kind`. Throws a PROVIDER_CONFIG error for an unusable config. */
export function createProviderClient(config: EndpointConfig, overrides: ProviderOverrides = {}): ProviderClient {
  switch (config.kind) {
    case 'sagemaker':
      return new SageMakerClient(config, overrides.sagemaker);
    case 'vertex':
      return new VertexClient(config, overrides.vertex);
    case 'pai-eas': {
      const env = process.env;
      const signing = overrides.easSigning ?? (env['TANDEM_EAS_ACCESS_KEY_ID'] && env['TANDEM_EAS_ACCESS_KEY_SECRET'] ? { keyId: env['TANDEM_EAS_ACCESS_KEY_ID'], secret: env['TANDEM_EAS_ACCESS_KEY_SECRET'] } : undefined);
      return new PaiEasClient(config, signing);
    }
    case 'oip':
      return new OipClient(config, overrides.oipHeaders);
    default:
      throw new ProviderError('PROVIDER_CONFIG', `unknown endpoint kind "${String((config as { kind: unknown }).kind)}"`);
  }
}
