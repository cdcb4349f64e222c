/**
 * The transport-independent core of the edge agent: every front hands it raw messages; it
 * applies the payload limit, decodes, de-duplicates redeliveries, bounds concurrency, calls
 * the inference service and sends exactly one reply per message. It never throws into a
 * transport: anything that goes wrong becomes an error reply and a counter.
 */
import type { Logger } from 'pino';
import { TandemError, httpStatusOf, isTandemError } from '../src/errors/index.js';
import { isResidencyRefusal } from '../src/residency/index.js';
import type { LimitsConfig } from './config.js';
import type { AgentMetrics } from './metrics.js';
import {
  CONTENT_TYPES,
  decodeRequest,
  encodeBody,
  errorBody,
  routingOf,
  successBody,
  type AgentRequest,
  type Encoding,
  type ReplyBody,
} from './protocol.js';
import type { InferenceService, ServiceResult } from './service.js';

/** A message as a transport received it. */
export interface InboundMessage {
  payload: Uint8Array;
  /** MQTT 5 content type or HTTP Content-Type. */
  contentType?: string;
}

/** How the core sends the single reply for a message; the transport decides the topic. */
export type Respond = (reply: { payload: Buffer; contentType: string; replyTo?: string; ok: boolean; status: number }) => Promise<void>;

/** The agent is shutting down and takes no new requests; the requester should retry. */
export class AgentDrainingError extends TandemError {
  constructor() {
    super('AGENT_DRAINING', 'the agent is shutting down; retry on another agent or later', { retryable: true });
  }
}

export interface AgentCoreOptions {
  service: InferenceService;
  metrics: AgentMetrics;
  logger: Logger;
  limits: LimitsConfig;
  /** How many finished replies to remember for answering redeliveries. */
  replyCacheSize?: number;
}

interface HandledReply {
  body: ReplyBody;
  encoding: Encoding;
  status: number;
}

interface Waiter {
  resolve: () => void;
}

export class AgentCore {
  private readonly service: InferenceService;
  private readonly metrics: AgentMetrics;
  private readonly logger: Logger;
  private readonly limits: LimitsConfig;
  private readonly cacheSize: number;
  private readonly running = new Map<string, Promise<HandledReply>>();
  private readonly replies = new Map<string, HandledReply>();
  private readonly tasks = new Set<Promise<void>>();
  private readonly waiting: Waiter[] = [];
  private active = 0;
  private draining = false;
  private readonly abort = new AbortController();

  constructor(options: AgentCoreOptions) {
    this.service = options.service;
    this.metrics = options.metrics;
    this.logger = options.logger;
    this.limits = options.limits;
    this.cacheSize = options.replyCacheSize ?? 1024;
  }

  /** Requests in progress. */
  get inFlight(): number {
    return this.active;
  }

  /**
   * Accepts one message. Resolves once the message has a concurrency slot (or has been
   * answered with an error), which is when a transport may acknowledge it; the work then
   * continues in the background and `respond` is called exactly once.
   */
  async accept(front: string, message: InboundMessage, respond: Respond): Promise<void> {
    let request: AgentRequest;
    try {
      if (this.draining) throw new AgentDrainingError();
      request = decodeRequest(message.payload, { maxBytes: this.limits.maxPayloadBytes, contentType: message.contentType });
    } catch (error) {
      const reason = isTandemError(error) ? error.code : 'INTERNAL';
      const routing = reason === 'PAYLOAD_TOO_LARGE' ? { encoding: 'json' as const } : routingOf(message.payload, message.contentType);
      if (reason !== 'AGENT_DRAINING') this.metrics.malformed.inc({ front, reason });
      this.metrics.requests.inc({ front, outcome: reason === 'PAYLOAD_TOO_LARGE' ? 'too_large' : reason === 'AGENT_DRAINING' ? 'refused' : 'malformed' });
      this.logger.warn({ front, reason, requestId: routing.requestId, bytes: message.payload.byteLength }, 'request refused before inference');
      const body = errorBody(routing.requestId, error);
      this.track(this.send(respond, { body, encoding: routing.encoding, status: statusOf(error) }, routing.replyTo));
      return;
    }

    const cached = this.replies.get(request.requestId);
    const running = this.running.get(request.requestId);
    if (cached !== undefined || running !== undefined) {
      // QoS 1 redelivery or a client retry: answer again without running the model twice.
      this.metrics.duplicates.inc({ front });
      this.logger.info({ front, requestId: request.requestId }, 'duplicate request answered from the reply cache');
      const replyTo = request.replyTo;
      this.track((running ?? Promise.resolve(cached as HandledReply)).then((reply) => this.send(respond, reply, replyTo)));
      return;
    }

    await this.acquire();
    const work = this.run(front, request).finally(() => {
      this.running.delete(request.requestId);
      this.release();
    });
    this.running.set(request.requestId, work);
    this.track(work.then((reply) => this.send(respond, reply, request.replyTo)));
  }

  private async run(front: string, request: AgentRequest): Promise<HandledReply> {
    const started = performance.now();
    this.metrics.inFlight.inc();
    const deadline = Date.now() + (request.deadlineMs ?? this.limits.defaultDeadlineMs);
    try {
      const result: ServiceResult = await this.service.infer(
        { requestId: request.requestId, model: request.model, dataClass: request.dataClass, input: request.input },
        { signal: this.abort.signal, deadline },
      );
      const seconds = (performance.now() - started) / 1000;
      this.metrics.observePlan(result.plan, seconds, result.fellBack);
      if (result.compression) this.metrics.compressionError.observe({ encoding: result.compression.method }, result.compression.relativeError);
      this.metrics.requests.inc({ front, outcome: 'ok' });
      this.logger.info(
        { front, requestId: request.requestId, model: request.model, dataClass: request.dataClass, plan: result.plan, fellBack: result.fellBack, ms: Math.round(seconds * 1000), stored: result.stored },
        'request completed',
      );
      const reply: HandledReply = { body: successBody(result, request), encoding: request.encoding, status: 200 };
      this.remember(request.requestId, reply);
      return reply;
    } catch (error) {
      const code = isTandemError(error) ? error.code : 'INTERNAL';
      if (isResidencyRefusal(code)) this.metrics.residencyRefusals.inc({ data_class: request.dataClass ?? '(default)' });
      this.metrics.requests.inc({ front, outcome: 'error' });
      this.logger.warn({ front, requestId: request.requestId, model: request.model, code, err: error }, 'request failed');
      const reply: HandledReply = { body: errorBody(request.requestId, error), encoding: request.encoding, status: statusOf(error) };
      // Retryable failures are not cached so that a redelivery runs again.
      if (!(isTandemError(error) && error.retryable)) this.remember(request.requestId, reply);
      return reply;
    } finally {
      this.metrics.inFlight.dec();
    }
  }

  private remember(requestId: string, reply: HandledReply): void {
    this.replies.set(requestId, reply);
    if (this.replies.size > this.cacheSize) {
      const oldest = this.replies.keys().next().value;
      if (oldest !== undefined) this.replies.delete(oldest);
    }
  }

  private async send(respond: Respond, reply: HandledReply, replyTo: string | undefined): Promise<void> {
    try {
      await respond({ payload: encodeBody(reply.body, reply.encoding), contentType: CONTENT_TYPES[reply.encoding], replyTo, ok: reply.body.ok, status: reply.status });
    } catch (error) {
      this.logger.error({ err: error, requestId: reply.body.requestId }, 'could not send the reply');
    }
  }

  private track(task: Promise<void>): void {
    const t = task.catch((error: unknown) => this.logger.error({ err: error }, 'unexpected failure in a request task'));
    this.tasks.add(t);
    void t.finally(() => this.tasks.delete(t));
  }

  private async acquire(): Promise<void> {
    if (this.active < this.limits.maxInFlight) {
      this.active++;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push({ resolve }));
    this.active++;
  }

  private release(): void {
    this.active--;
    this.waiting.shift()?.resolve();
  }

  /**
   * Stops taking requests and waits for the ones in progress and their replies. Requests
   * still running after `timeoutMs` are aborted (they get an error reply).
   */
  async drain(timeoutMs: number): Promise<{ drained: boolean }> {
    this.draining = true;
    const all = Promise.all([...this.tasks]).then(() => true);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    const drained = await Promise.race([all, timeout]);
    clearTimeout(timer);
    if (!drained) {
      this.abort.abort(new AgentDrainingError());
      await Promise.race([Promise.all([...this.tasks]), new Promise((r) => setTimeout(r, 1000))]);
    }
    return { drained };
  }
}

/** The catalogue's status for the code, as the cloud answers it: one table, not one per front. */
function statusOf(error: unknown): number {
  return isTandemError(error) ? httpStatusOf(error.code) : httpStatusOf('INTERNAL');
}
