/**
 * Assembles a running agent from a validated config and an inference service: the core,
 * the metrics, and whichever fronts the config enables. `stop()` is the SIGTERM path:
 * refuse new requests, finish the ones in progress, flush the outbox, disconnect, all within
 * `limits.drainTimeoutMs` whatever the broker does.
 */
import type { Logger } from 'pino';
import { raceAbort } from '../src/util/index.js';
import { AgentCore } from './agent.js';
import type { EdgeConfig, NucleusConnection } from './config.js';
import { HttpFront } from './http-front.js';
import { createMetrics, type AgentMetrics } from './metrics.js';
import { followModelVersions } from './greengrass-config.js';
import { GreengrassTransport } from './greengrass-transport.js';
import type { ModelUpdateEvent } from './model-updates.js';
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
  /** Called when a model version the Greengrass configuration names is applied or refused. */
  onModelUpdate?: (event: ModelUpdateEvent) => void;
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
      if (config.mqtt) this.transports.push(new MqttTransport({ config: config.mqtt, logger, metrics: this.metrics }));
      if (config.greengrass) {
        // Model versions named by the component configuration (docs/guide/model-updates.md).
        const configuration = followModelVersions({ service, config, logger, updates: this.metrics.modelUpdates, ...(options.onModelUpdate ? { onEvent: options.onModelUpdate } : {}) });
        this.transports.push(new GreengrassTransport({ config: config.greengrass, logger, metrics: this.metrics, ...options.nucleus, ...(configuration ? { configuration } : {}) }));
      }
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
    const budget = config.limits.drainTimeoutMs;
    const deadline = began + budget;
    const left = (): number => Math.max(0, deadline - Date.now());
    // The budget's last part is kept for the outbox flush and the disconnects, however long the
    // requests run or their replies wait on a broker: a quarter, at most 2 s.
    const tail = Math.min(2000, Math.round(budget / 4));
    logger.info({ inFlight: this.core.inFlight }, 'draining');
    const drainMs = Math.max(0, left() - tail);
    // After its timeout the core waits up to 1 s more for the aborted requests' error replies;
    // that wait is cut to an eighth of the tail so as not to eat the flush's time.
    const { drained } = await raceAbort(this.core.drain(drainMs), { deadline: Date.now() + drainMs + tail / 8 }).catch(() => ({ drained: false }));
    let flushed = true;
    try {
      await service.flush(Math.max(1, left() - tail / 2));
    } catch (error) {
      flushed = false;
      logger.warn({ err: error, outboxDepth: service.health().outboxDepth }, 'outbox not fully flushed; it is replayed at the next start');
    }
    // A transport's own bound is the time left; the race is for one that does not keep it.
    await Promise.allSettled(
      this.transports.map((t) => {
        const ms = Math.max(1, left() - 50);
        return raceAbort(t.stop(ms), { deadline: Date.now() + ms + 25 });
      }),
    );
    await this.http?.stop();
    await service.close();
    logger.info({ drained, flushed, ms: Date.now() - began }, 'edge agent stopped');
    return { drained, flushed };
  }
}
