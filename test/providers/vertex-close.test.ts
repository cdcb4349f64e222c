/**
 * A closed Vertex AI gRPC client opens no connection again. A call whose channel fails to
 * connect leaves grpc-js's subchannel in backoff with a reconnect already asked for (its load
 * balancer asks on every TRANSIENT_FAILURE); closing the channel does not cancel that, and about
 * a second after `close()` the subchannel used to connect once more. Seen both ways: straight to
 * an endpoint that drops every connection, and through a proxy that refuses the tunnel.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProviderClient, type EndpointConfig } from '../../src/providers/index.js';
import { ConnectProxy } from '../fakes/connect-proxy.js';
import { CREDS, randomInput } from '../helpers/cloud.js';
import { isolateEnv } from '../helpers/env.js';
import { failure } from '../helpers/errors.js';
import { closedPort, droppingServer, type DroppingServer } from '../helpers/net.js';

/** Past grpc-js's first reconnect backoff as gax sets it (1 s, ±20% jitter), twice over. */
const WATCH_MS = 2_500;

// grpc-js and gaxios read proxy variables themselves: none of the machine's may take part.
const restoreEnv = isolateEnv(['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy', 'NO_PROXY', 'no_proxy', 'grpc_proxy']);

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

const vertex = (url: string, extra: Partial<EndpointConfig> = {}): EndpointConfig => ({
  name: 'vx-close', kind: 'vertex', region: 'europe-west4', url, transport: 'grpc', project: 'proj', target: 'ep1', token: CREDS.vertexToken, ...extra,
});
const tiny = randomInput([1, 3, 8, 10], 3);

describe('a closed Vertex gRPC client', () => {
  it('does not connect to the endpoint again after close(), when its call could not connect', async () => {
    const client = createProviderClient(vertex(`http://127.0.0.1:${dropping.port}`, { proxy: false }));
    const error = await failure(client.infer({ model: 'cls', inputs: tiny }, { deadline: Date.now() + 20_000 }));
    expect(error.status).toBe(503);
    expect(dropping.accepted()).toBeGreaterThan(0);
    await client.close();
    const atClose = dropping.accepted();
    await sleep(WATCH_MS);
    expect(dropping.accepted() - atClose, 'connections opened after close()').toBe(0);
  });

  it('does not ask the proxy for a tunnel again after close(), when the proxy refused one', async () => {
    // The endpoint is never reached: the proxy refuses every tunnel.
    const client = createProviderClient(vertex(`http://127.0.0.1:${await closedPort()}`, { proxy: forbidding.url() }));
    const error = await failure(client.infer({ model: 'cls', inputs: tiny }, { deadline: Date.now() + 20_000 }));
    expect(error.code).toBe('PROVIDER_PROXY');
    expect(forbidding.refused.length).toBeGreaterThan(0);
    await client.close();
    forbidding.reset();
    await sleep(WATCH_MS);
    expect(forbidding.refused, 'CONNECT requests after close()').toEqual([]);
    expect(forbidding.count()).toBe(0);
  });
});
