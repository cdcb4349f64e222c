/**
 * A closed Google Cloud KMS gRPC client opens no connection again, as for Vertex AI
 * (test/providers/vertex-close.test.ts): a call whose channel fails to connect leaves grpc-js's
 * subchannel in backoff with a reconnect already asked for, which closing the channel does not
 * cancel. Seen straight to an endpoint that drops every connection (no route, and a route that
 * keeps it direct), through grpc-js's own reading of `https_proxy` (no route), and through a
 * route's proxy that refuses the tunnel.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { googleAuthLibrary } from 'google-gax';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProxyRoute } from '../../src/providers/proxy.js';
import { GcpKmsSource, type GcpKmsOptions } from '../../src/residency/kms/gcp.js';
import { ConnectProxy } from '../fakes/connect-proxy.js';
import { isolateEnv } from '../helpers/env.js';
import { closedPort, droppingServer, type DroppingServer } from '../helpers/net.js';

/** Past grpc-js's first reconnect backoff as gax sets it (1 s, ±20% jitter), twice over. */
const WATCH_MS = 2_500;

// grpc-js and gaxios read proxy variables themselves: none of the machine's may take part.
const restoreEnv = isolateEnv(['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy', 'NO_PROXY', 'no_proxy', 'grpc_proxy', 'no_grpc_proxy', 'GOOGLE_APPLICATION_CREDENTIALS']);

/** An endpoint that drops every connection: gRPC cannot connect. */
let dropping: DroppingServer;
const forbidding = new ConnectProxy({ refuse: 403 });

beforeAll(async () => {
  dropping = await droppingServer();
  await forbidding.start();
});

afterAll(async () => {
  await forbidding.stop();
  await dropping.close();
  restoreEnv();
});

/** `kms`, whose call went to the refusing proxy, asks it for nothing once closed. */
async function expectNoTunnelAfterClose(kms: GcpKmsSource): Promise<void> {
  expect(forbidding.refused.length).toBeGreaterThan(0);
  await kms.close();
  forbidding.reset();
  await sleep(WATCH_MS);
  expect(forbidding.refused, 'CONNECT requests after close()').toEqual([]);
  expect(forbidding.count()).toBe(0);
}

const KEY = 'projects/tandem/locations/europe-west3/keyRings/edge/cryptoKeys/results';

/** A source on gRPC (an `https://` endpoint), with a token that needs no token service. */
function source(endpoint: string, options: Omit<GcpKmsOptions, 'client'> = {}): GcpKmsSource {
  const auth = new googleAuthLibrary.OAuth2Client();
  auth.setCredentials({ access_token: 'ya29.edge-token', expiry_date: Date.now() + 3600_000 });
  return new GcpKmsSource({ kind: 'gcp-kms', keyName: KEY, region: 'europe-west3', endpoint }, { client: { authClient: auth }, ...options });
}

describe('a closed Google Cloud KMS gRPC client', () => {
  it.each([
    ['no route', undefined],
    ['a route that keeps it direct', new ProxyRoute(false, 'KMS clients')],
  ])('does not connect to the endpoint again after close(), when its call could not connect (%s)', async (_what, route) => {
    const kms = source(`https://127.0.0.1:${dropping.port}`, route ? { route } : {});
    const before = dropping.accepted();
    await expect(kms.generateDataKey()).rejects.toMatchObject({ code: 'KMS_UNAVAILABLE' });
    expect(dropping.accepted()).toBeGreaterThan(before);
    await kms.close();
    const atClose = dropping.accepted();
    await sleep(WATCH_MS);
    expect(dropping.accepted() - atClose, 'connections opened after close()').toBe(0);
  });

  it('does not ask the proxy for a tunnel again after close(), when the proxy refused one', async () => {
    // The endpoint is never reached: the proxy refuses every tunnel.
    const kms = source(`https://127.0.0.1:${await closedPort()}`, { route: new ProxyRoute(forbidding.url(), 'KMS clients') });
    forbidding.reset();
    // The proxy's refusal, asked for again behind grpc-js's UNAVAILABLE, as over REST.
    await expect(kms.generateDataKey()).rejects.toMatchObject({ code: 'KMS_CONFIG', message: expect.stringMatching(/403/) });
    await expectNoTunnelAfterClose(kms);
  });

  it('without a route, still follows grpc-js\'s own https_proxy, and asks it for no tunnel again after close()', async () => {
    const restore = isolateEnv(['https_proxy']);
    process.env['https_proxy'] = forbidding.url();
    try {
      const kms = source(`https://127.0.0.1:${await closedPort()}`);
      forbidding.reset();
      await expect(kms.generateDataKey()).rejects.toMatchObject({ code: expect.stringMatching(/^KMS_/) });
      // The environment's proxy took the call: no route, grpc-js decides (docs/guide/network.md).
      await expectNoTunnelAfterClose(kms);
    } finally {
      restore();
    }
  });
});
