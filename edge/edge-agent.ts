/**
 * Assembles a running agent from a validated config and an inference service: the core,
 * the metrics, and whichever fronts the config enables. `stop()` is the SIGTERM path:
 * refuse new requests, finish the ones in progress, flush the outbox, disconnect.
 */
import type { Logger } from 'pino';
import { AgentCore } from './agent.js';
import type { EdgeConfig, NucleusConnection } from './config.js';
import { HttpFront } from './http-front.js';
import { createMetrics, type AgentMetrics } from './metrics.js';
import { GreengrassTransport } from './greengrass-transport.js';
import { MqttTransport } from './mqtt-transport.js';
import type { InferenceService } from './service.js';
import type { Transport } from './transport.js';

export interface EdgeAgentOptions {
  config: EdgeConfig;
  service: InferenceService;
  logger: Logger;
  /** Message transports to use instead of those the config describes (tests, embedding). */
  transports?: Transport[];
  /** Include Node process metrics in /metrics. */
  defaultMetrics?: boolean;
  /** The Greengrass nucleus's socket and token, as `loadEdgeConfig` read them from the environment. */
  nucleus?: NucleusConnection;
}

export interface StopReport {
  /** Every in-flight request finished within the drain timeout. */
  drained: boolean;
  /** The outbox handed every accepted result to its store. */
  flushed: boolean;
}

export class EdgeAgent {
  readonly core: AgentCore;
  readonly metrics: AgentMetrics;
  private readonly options: EdgeAgentOptions;
  private readonly transports: Transport[] = [];
  private http: HttpFront | undefined;
  private draining = false;
  private stopping: Promise<StopReport> | undefined;
  /** Bound HTTP port once started. */
  httpPort: number | undefined;

  constructor(options: EdgeAgentOptions) {
    this.options = options;
    const { service, config, logger } = options;
    this.metrics = createMetrics({ outboxDepth: () => service.health().outboxDepth, defaultMetrics: options.defaultMetrics });
    this.core = new AgentCore({ service, metrics: this.metrics, logger, limits: config.limits });
    if (options.transports) {
      this.transports.push(...options.transports);
    } else {
      if (config.mqtt) this.transports.push(new MqttTransport({ config: config.mqtt, logger }));
      if (config.greengrass) this.transports.push(new GreengrassTransport({ config: config.greengrass, logger, ...options.nucleus }));
    }
  }

  /** Starts every front; if one fails, the ones already started are stopped again. */
  async start(): Promise<void> {
    const { config, logger, service } = this.options;
    const started: Transport[] = [];
    try {
      if (config.http) {
        this.http = new HttpFront({
          config: config.http,
          core: this.core,
          service,
          metrics: this.metrics,
          logger,
          maxPayloadBytes: config.limits.maxPayloadBytes,
          isDraining: () => this.draining,
        });
        this.httpPort = await this.http.start();
      }
      for (const t of this.transports) {
        await t.start(this.core);
        started.push(t);
      }
    } catch (error) {
      await Promise.allSettled(started.map((t) => t.stop()));
      await this.http?.stop();
      throw error;
    }
    logger.info({ models: service.models(), fronts: [...(this.http ? ['http'] : []), ...this.transports.map((t) => t.name)] }, 'edge agent started');
  }

  /** Graceful shutdown; idempotent. */
  async stop(): Promise<StopReport> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<StopReport> {
    const { config, logger, service } = this.options;
    this.draining = true;
    const began = Date.now();
    logger.info({ inFlight: this.core.inFlight }, 'draining');
    const { drained } = await this.core.drain(config.limits.drainTimeoutMs);
    let flushed = true;
    try {
      await service.flush(Math.max(1000, config.limits.drainTimeoutMs - (Date.now() - began)));
    } catch (error) {
      flushed = false;
      logger.warn({ err: error, outboxDepth: service.health().outboxDepth }, 'outbox not fully flushed; it is replayed at the next start');
    }
    await Promise.allSettled(this.transports.map((t) => t.stop()));
    await this.http?.stop();
    await service.close();
    logger.info({ drained, flushed, ms: Date.now() - began }, 'edge agent stopped');
    return { drained, flushed };
  }
}
