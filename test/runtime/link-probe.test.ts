/**
 * Out-of-band link probes: the cloud service's probe route, the OIP client's `probeLink`, and
 * the runtime probing, after a request that left the link quiet, the links its planner asks
 * about.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CloudService } from '../../cloud/server.js';
import { createRuntime, type EndpointConfig, type Observation, type Plan, type PlanChooser, type PlanContext } from '../../src/index.js';
import { OipClient } from '../../src/providers/oip.js';
import type { ProviderClient } from '../../src/providers/types.js';
import { LINK_PROBE_HEADER_BYTES, LINK_PROBE_LARGE_BYTES, LINK_PROBE_SMALL_BYTES, LinkProber } from '../../src/runtime/link-probe.js';
import { modelsDir, startService } from '../helpers/cloud.js';
import { closedPort } from '../helpers/net.js';
import { CLS_MODEL, randomInput } from '../helpers/runtime-fixtures.js';

const DIMS = [1, 3, 48, 192];
const SMALL = LINK_PROBE_SMALL_BYTES + LINK_PROBE_HEADER_BYTES;
const LARGE = LINK_PROBE_LARGE_BYTES + LINK_PROBE_HEADER_BYTES;

/** A chooser that runs a fixed plan and asks for every allowed link (or those in `due`) to be probed. */
class ProbingChooser implements PlanChooser {
  reports: Array<{ endpoint: string; networkMs: number; bytes: number }> = [];
  constructor(public plan: Plan, private readonly due?: readonly string[]) {}
  choose(): Plan {
    return this.plan;
  }
  observe(_observation: Observation): void {}
  linkProbesDue(context: PlanContext): string[] {
    return context.allowedEndpoints.filter((name) => this.due === undefined || this.due.includes(name));
  }
  reportLinkProbe(endpoint: string, networkMs: number, bytes: number): void {
    this.reports.push({ endpoint, networkMs, bytes });
  }
}

/** An OIP-like server without the probe route: it reads every body and answers 404. */
async function serverWithoutProbeRoute(): Promise<{ server: Server; url: string; hits: () => number }> {
  let hits = 0;
  const server = createServer((req, res) => {
    hits += 1;
    req.resume();
    req.on('end', () => res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}'));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, hits: () => hits };
}

/** A server whose probe route reads the body and holds the answer until the client gives up. */
async function stallingProbeServer(): Promise<{ server: Server; url: string; held: () => number; abandoned: () => number }> {
  let held = 0;
  let abandoned = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      held += 1;
      res.on('close', () => {
        if (!res.writableEnded) abandoned += 1;
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, held: () => held, abandoned: () => abandoned };
}

/** A client whose probe transfers the test finishes by hand. */
class ManualProbeClient {
  readonly transfers: Array<{ bytes: number; signal: AbortSignal | undefined; finish: (ms: number) => void }> = [];
  constructor(private readonly honourAbort = true) {}
  probeLink(bytes: number, options: { signal?: AbortSignal } = {}): Promise<number> {
    return new Promise((resolve, reject) => {
      this.transfers.push({ bytes, signal: options.signal, finish: resolve });
      if (this.honourAbort) options.signal?.addEventListener('abort', () => reject(options.signal?.reason as Error), { once: true });
    });
  }
  /** Finishes the pending transfer, then waits for the prober to react. */
  async finish(ms: number): Promise<void> {
    this.transfers.at(-1)?.finish(ms);
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
}

/** A one-worker runtime of the small classifier whose plans come from `chooser`. */
function probingRuntime(chooser: ProbingChooser, endpoints: EndpointConfig[], options: { linkProbes?: boolean } = {}): ReturnType<typeof createRuntime> {
  return createRuntime({ model: CLS_MODEL, modelName: 'cls', endpoints, planner: chooser, workers: 1, ...options });
}

async function until(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > end) throw new Error('timed out waiting for the probes');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('link probes', () => {
  let models: ReturnType<typeof modelsDir>;
  let service: CloudService;
  let plain: Awaited<ReturnType<typeof serverWithoutProbeRoute>>;

  beforeAll(async () => {
    models = modelsDir();
    service = await startService(models.dir, { maxBodyBytes: 8 * 1024 * 1024 });
    plain = await serverWithoutProbeRoute();
  });
  afterAll(async () => {
    await service?.drain();
    await new Promise<void>((resolve) => plain?.server.close(() => resolve()));
    models?.cleanup();
  });

  it('the service reads a probe whole and answers 204; it refuses one over 1 MB and stays healthy', async () => {
    const client = new OipClient({ name: 'loop', kind: 'oip', region: 'local', url: service.url });
    const ms = await client.probeLink(LINK_PROBE_LARGE_BYTES);
    expect(ms).toBeGreaterThan(0);
    const metrics = await service.metrics.registry.metrics();
    expect(metrics).toMatch(new RegExp(`tandem_cloud_request_bytes_total\\{route="link-probe"\\} ${LINK_PROBE_LARGE_BYTES}`));
    await expect(client.probeLink(2 * 1024 * 1024)).rejects.toMatchObject({ code: 'PROVIDER_VALIDATION', status: 413 });
    expect(await client.probeLink(LINK_PROBE_SMALL_BYTES)).toBeGreaterThan(0);
    const ping = await fetch(`${service.url}/ping`);
    expect(ping.status).toBe(200);
  });

  it('a server without the route answers the client with a final PROVIDER_VALIDATION error', async () => {
    const client = new OipClient({ name: 'plain', kind: 'oip', region: 'local', url: plain.url });
    await expect(client.probeLink(LINK_PROBE_SMALL_BYTES)).rejects.toMatchObject({ code: 'PROVIDER_VALIDATION', status: 404, retryable: false });
  });

  it('the runtime probes after a local request, stops probing a server without the route, and not after a large transfer', async () => {
    const chooser = new ProbingChooser({ kind: 'local' });
    const runtime = await probingRuntime(chooser, [
      { name: 'loop', kind: 'oip', region: 'local', url: service.url },
      { name: 'plain', kind: 'oip', region: 'local', url: plain.url },
      { name: 'down', kind: 'oip', region: 'local', url: `http://127.0.0.1:${await closedPort()}` },
    ]);
    try {
      const hitsBefore = plain.hits();
      await runtime.infer(randomInput(DIMS, 3));
      // A round: the fastest of the small transfers, then the large one; only the service answers.
      await until(() => chooser.reports.length >= 2);
      await until(() => plain.hits() > hitsBefore);
      expect(chooser.reports.map((r) => [r.endpoint, r.bytes])).toEqual([['loop', SMALL], ['loop', LARGE]]);
      expect(chooser.reports.every((r) => r.networkMs > 0)).toBe(true);

      // The 404 server is not asked again; the service is.
      const plainHits = plain.hits();
      await runtime.infer(randomInput(DIMS, 4));
      await until(() => chooser.reports.length >= 4);
      expect(plain.hits()).toBe(plainHits);

      // An offload of the 110 KB input measured the link itself: no round follows it.
      chooser.plan = { kind: 'offload', endpoint: 'loop' };
      const offload = await runtime.infer(randomInput(DIMS, 5));
      expect(offload.bytesSent).toBeGreaterThan(64 * 1024);
    } finally {
      await runtime.close();
    }
    // close() waited for any probe still running: nothing arrives after it.
    expect(chooser.reports).toHaveLength(4);
  });

  it('does not probe when told not to', async () => {
    const chooser = new ProbingChooser({ kind: 'local' });
    const runtime = await probingRuntime(chooser, [{ name: 'loop', kind: 'oip', region: 'local', url: service.url }], { linkProbes: false });
    try {
      await runtime.infer(randomInput(DIMS, 6));
    } finally {
      await runtime.close();
    }
    expect(chooser.reports).toEqual([]);
  });

  it('a request that starts using the link aborts the round in flight, which reports nothing', async () => {
    const stalling = await stallingProbeServer();
    const chooser = new ProbingChooser({ kind: 'local' }, ['slow']);
    const runtime = await probingRuntime(chooser, [
      { name: 'loop', kind: 'oip', region: 'local', url: service.url },
      { name: 'slow', kind: 'oip', region: 'local', url: stalling.url },
    ]);
    try {
      await runtime.infer(randomInput(DIMS, 7));
      await until(() => stalling.held() === 1);
      chooser.plan = { kind: 'offload', endpoint: 'loop' };
      const offload = await runtime.infer(randomInput(DIMS, 8));
      expect(offload.plan).toEqual({ kind: 'offload', endpoint: 'loop' });
      // At once, not at the round's 10 s timeout.
      await until(() => stalling.abandoned() === 1, 2000);
    } finally {
      await runtime.close();
      await new Promise<void>((resolve) => stalling.server.close(() => resolve()));
    }
    expect(stalling.held()).toBe(1);
    expect(chooser.reports).toEqual([]);
  });
});

describe('link prober', () => {
  const context: PlanContext = { allowedEndpoints: ['e'] };
  const offload: Plan = { kind: 'offload', endpoint: 'e' };
  const prober = (client: ManualProbeClient): { chooser: ProbingChooser; prober: LinkProber } => {
    const chooser = new ProbingChooser({ kind: 'local' });
    return { chooser, prober: new LinkProber(chooser, new Map([['e', client as unknown as ProviderClient]])) };
  };

  it('starts no round while a request uses the link, and one once it is done', async () => {
    const client = new ManualProbeClient();
    const { chooser, prober: p } = prober(client);
    const released = p.requestStarting(offload);
    expect(p.afterRequest(context, 0)).toBeUndefined();
    released();
    released();
    const round = p.afterRequest(context, 0);
    expect(round).toBeDefined();
    // A local request does not touch the link: the round goes on.
    p.requestStarting({ kind: 'local' })();
    for (const ms of [9, 7, 8]) await client.finish(ms);
    await client.finish(40);
    await round;
    expect(client.transfers.map((t) => t.bytes)).toEqual([LINK_PROBE_SMALL_BYTES, LINK_PROBE_SMALL_BYTES, LINK_PROBE_SMALL_BYTES, LINK_PROBE_LARGE_BYTES]);
    expect(chooser.reports).toEqual([{ endpoint: 'e', networkMs: 7, bytes: SMALL }, { endpoint: 'e', networkMs: 40, bytes: LARGE }]);
  });

  it('aborts the round when a request starts using the link; what was measured before stands', async () => {
    const client = new ManualProbeClient();
    const { chooser, prober: p } = prober(client);
    const round = p.afterRequest(context, 0);
    for (const ms of [9, 7, 8]) await client.finish(ms);
    const large = client.transfers.at(-1);
    expect(large?.bytes).toBe(LINK_PROBE_LARGE_BYTES);
    const released = p.requestStarting({ kind: 'split', endpoint: 'e', cut: 'c3' });
    expect(large?.signal?.aborted).toBe(true);
    await round;
    expect(chooser.reports).toEqual([{ endpoint: 'e', networkMs: 7, bytes: SMALL }]);
    released();
    // The endpoint is probed again afterwards: an abort is not a refusal.
    const again = p.afterRequest(context, 0);
    expect(again).toBeDefined();
    p.requestStarting(offload)();
    await again;
  });

  it('does not report a transfer that a request overlapped, even when the client ignores the abort', async () => {
    const client = new ManualProbeClient(false);
    const { chooser, prober: p } = prober(client);
    const round = p.afterRequest(context, 0);
    await client.finish(9);
    await client.finish(7);
    p.requestStarting(offload)();
    await client.finish(8);
    expect(chooser.reports).toEqual([]);
    await round;
    expect(client.transfers).toHaveLength(3);
  });
});
