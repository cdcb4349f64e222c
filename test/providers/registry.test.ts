/**
 * The provider registry: one factory per endpoint kind, chosen by `kind`, and no environment
 * read by the library (the config layers pass what they read).
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createProviderClient, easSigningFromEnv, OipClient, PaiEasClient, ProviderError, SageMakerClient, VertexClient, type EndpointConfig } from '../../src/providers/index.js';

const url = 'http://127.0.0.1:9';

afterEach(() => {
  vi.unstubAllEnvs();
});

describe('createProviderClient', () => {
  it.each([
    [{ name: 'sm', kind: 'sagemaker', region: 'eu-central-1', url, target: 'ep' }, SageMakerClient],
    [{ name: 'vx', kind: 'vertex', region: 'europe-west4', url, project: 'p', target: 'ep', token: 't' }, VertexClient],
    [{ name: 'eas', kind: 'pai-eas', region: 'cn-shanghai', url, target: 'svc', token: 't' }, PaiEasClient],
    [{ name: 'oip', kind: 'oip', region: 'local', url }, OipClient],
  ] satisfies [EndpointConfig, unknown][])('makes the %o endpoint\'s client for its kind', async (config, type) => {
    const client = createProviderClient(config);
    expect(client).toBeInstanceOf(type);
    expect(client.endpoint).toBe(config);
    await client.close();
  });

  it.each(['azure', 'toString', '__proto__'])('refuses the kind %s with PROVIDER_CONFIG', (kind) => {
    const config = { name: 'x', kind, region: 'r', url } as unknown as EndpointConfig;
    expect(() => createProviderClient(config)).toThrow(ProviderError);
    expect(() => createProviderClient(config)).toThrow(`unknown endpoint kind "${kind}"`);
  });

  it('reads no environment: PAI-EAS signing keys come from the overrides only', async () => {
    vi.stubEnv('TANDEM_EAS_ACCESS_KEY_ID', 'AKID');
    vi.stubEnv('TANDEM_EAS_ACCESS_KEY_SECRET', 'secret');
    const config: EndpointConfig = { name: 'eas', kind: 'pai-eas', region: 'cn-shanghai', url, target: 'svc' };
    expect(() => createProviderClient(config)).toThrow(expect.objectContaining({ code: 'PROVIDER_CONFIG', message: expect.stringContaining('needs a token or signing keys') }));
    const signed = createProviderClient(config, { easSigning: easSigningFromEnv(process.env) });
    expect(signed).toBeInstanceOf(PaiEasClient);
    await signed.close();
  });
});

describe('easSigningFromEnv', () => {
  it('gives the keys only when both are set', () => {
    expect(easSigningFromEnv({ TANDEM_EAS_ACCESS_KEY_ID: 'id', TANDEM_EAS_ACCESS_KEY_SECRET: 'sec' })).toEqual({ keyId: 'id', secret: 'sec' });
    expect(easSigningFromEnv({ TANDEM_EAS_ACCESS_KEY_ID: 'id' })).toBeUndefined();
    expect(easSigningFromEnv({ TANDEM_EAS_ACCESS_KEY_ID: 'id', TANDEM_EAS_ACCESS_KEY_SECRET: '' })).toBeUndefined();
    expect(easSigningFromEnv({})).toBeUndefined();
  });
});
