/**
 * The Tandem cloud service: one node:http server that honours the SageMaker and Vertex AI
 * container contracts, the Open Inference Protocol v2 and Tandem's msgpack fast path, and
 * emulates the SageMaker runtime, Vertex AI and PAI-EAS front APIs so that each provider's
 * real SDK can reach it unchanged; optionally a gRPC server for Vertex AI's PredictionService,
 * the transport the Vertex SDK uses by default. Each front lives in `fronts/`; every request
 * goes through the one inference core (`core.ts`). This module assembles them.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Admission } from './admission.js';
import { BodyReader } from './body.js';
import { InferenceCore } from './core.js';
import { BodyFormats } from './formats.js';
import { JsonThread } from './json-thread.js';
import type { GrpcFront } from './front.js';
import { createHttpServer, httpHandler } from './fronts/http.js';
import type { FrontContext } from './fronts/http-front.js';
import { closeServer, Lifecycle, listen } from './lifecycle.js';
import { CloudMetrics } from './metrics.js';
import { discoverModels, ModelRepository, threadingOf } from './models.js';
import { serviceSettings, type CloudServiceOptions } from './options.js';

export { COMPUTE_HEADER, CUT_HEADER, DEADLINE_HEADER, MODEL_HEADER } from './front.js';
export { SAGEMAKER_MAX_BODY_BYTES } from './fronts/sagemaker.js';
export type { CloudCredentials, CloudServiceOptions } from './options.js';

export interface CloudService {
  readonly url: string;
  readonly port: number;
  readonly server: Server;
  /** The gRPC front's port and URL (`https://` with TLS, else `http://`), when it runs. */
  readonly grpcPort: number | undefined;
  readonly grpcUrl: string | undefined;
  readonly metrics: CloudMetrics;
  readonly models: ModelRepository;
  /** Stops accepting, lets in-flight requests finish (on both fronts), then releases the sessions. */
  drain(): Promise<void>;
}

/** Starts the service; resolves once it listens. */
export async function startCloudService(options: CloudServiceOptions): Promise<CloudService> {
  const settings = serviceSettings(options);
  const { log, workers, maxPartitions } = settings;
  const packages = typeof settings.models === 'string' ? await discoverModels(settings.models) : settings.models;
  // Loaded only when asked for: piscina's start-up is not free, and most services run inline.
  // The per-model limiters bound the requests; the pool only orders them. Each worker keeps as
  // many sessions as the repository keeps partitions, so the two caches hold the same set.
  const pool = workers > 0
    ? new (await import('../src/runtime/index.js')).EdgePool({ workers, ...threadingOf(settings.sessionOptions ?? {}), maxQueue: Number.MAX_SAFE_INTEGER, whenFull: 'wait', maxSessions: maxPartitions })
    : undefined;
  const repo = new ModelRepository(packages, settings.extractTail, settings.sessionOptions, pool, maxPartitions);
  const metrics = new CloudMetrics(settings.processMetrics);
  metrics.watchPartitions(() => repo.loaded);
  const lifecycle = new Lifecycle(settings.timeoutMs, log);
  const admission = new Admission(settings, metrics);
  const bodies = new BodyReader({ transferable: pool !== undefined, budget: admission.budget, idleMs: settings.bodyIdleMs });
  const core = new InferenceCore({ repo, metrics, log, lifecycle, bodies, pooled: pool !== undefined, maxConcurrent: settings.maxConcurrent, maxQueue: settings.maxQueue });
  // Large JSON bodies are parsed in a thread of their own, started on the first one.
  const jsonThread = new JsonThread(metrics.offloaded, { heapMb: settings.jsonThreadHeapMb });
  const formats = new BodyFormats(settings.maxBody, settings.maxJson, { thread: jsonThread, bodies, inlineBytes: settings.inlineJson });
  const ctx: FrontContext = { settings, repo, metrics, bodies, formats, core, lifecycle };

  const server = createHttpServer(settings, httpHandler(ctx), admission.connections);
  try {
    if (settings.preload) await repo.preload((model, error) => log.warn({ model, err: error }, 'model failed to preload; its first request loads it again'));
    await listen(server, settings.port, settings.host);
  } catch (error) {
    await repo.close();
    await pool?.close();
    await jsonThread.close();
    throw error;
  }
  const address = server.address() as AddressInfo;
  const host = settings.host && settings.host !== '0.0.0.0' ? settings.host : '127.0.0.1';
  const scheme = settings.tls ? 'https' : 'http';
  const url = `${scheme}://${host}:${address.port}`;

  let grpc: GrpcFront | undefined;
  if (settings.grpcPort !== undefined) {
    try {
      // Loaded only when asked for: grpc-js and the Vertex protos are not free to load.
      const { startGrpcFront } = await import('./fronts/vertex-grpc.js');
      grpc = await startGrpcFront(ctx, { port: settings.grpcPort, host: settings.host, ...(settings.tls ? { tls: settings.tls } : {}) });
    } catch (error) {
      await closeServer(server);
      await pool?.close();
      await jsonThread.close();
      throw error;
    }
  }
  const grpcUrl = grpc ? `${scheme}://${host}:${grpc.port}` : undefined;
  log.info({ url, ...(grpcUrl ? { grpcUrl } : {}), models: repo.names(), workers }, 'tandem cloud service listening');

  return {
    url,
    port: address.port,
    server,
    grpcPort: grpc?.port,
    grpcUrl,
    metrics,
    models: repo,
    drain: () => lifecycle.drain({
      server,
      grpc,
      release: async () => {
        await repo.close();
        await pool?.close();
        await jsonThread.close();
      },
    }),
  };
}
