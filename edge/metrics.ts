/**
 * The agent's Prometheus metrics, on a registry of its own so that several agents (tests,
 * the demo) can live in one process without clashing on prom-client's global registry.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { type Plan, describePlan } from '../src/planner/index.js';

export interface AgentMetrics {
  readonly registry: Registry;
  readonly requests: Counter<'front' | 'outcome'>;
  readonly latency: Histogram<'plan_kind' | 'plan'>;
  readonly fallbacks: Counter<'plan'>;
  readonly malformed: Counter<'front' | 'reason'>;
  readonly residencyRefusals: Counter<'data_class'>;
  readonly duplicates: Counter<'front'>;
  /** Replies sent to the results topic because the topic the request named breaks the rules (edge/reply-topic.ts). */
  readonly replyTopicsRefused: Counter<'front' | 'reason'>;
  /** Replies given up: the broker dropped the connection each time one was in flight, or shutdown came first. */
  readonly repliesDropped: Counter<'front' | 'reason'>;
  /** Relative error of the cut tensors of splits sent float16 or int8, by encoding (the codec's report). */
  readonly compressionError: Histogram<'encoding'>;
  /** Model versions applied or refused, by model, source and outcome; code is the refusal's error code. */
  readonly modelUpdates: Counter<'model' | 'source' | 'outcome' | 'code'>;
  readonly inFlight: Gauge;
  readonly outboxDepth: Gauge;
  observePlan(plan: Plan, seconds: number, fellBack: boolean): void;
}

/** `outboxDepth` is read at scrape time so the gauge is never stale. */
export function createMetrics(options: { outboxDepth: () => number; defaultMetrics?: boolean }): AgentMetrics {
  const registry = new Registry();
  if (options.defaultMetrics ?? false) collectDefaultMetrics({ register: registry, prefix: 'tandem_agent_' });
  const requests = new Counter({
    name: 'tandem_requests_total',
    help: 'Requests handled, by front and outcome (ok, error, malformed, too_large, refused).',
    labelNames: ['front', 'outcome'] as const,
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'tandem_request_duration_seconds',
    help: 'End-to-end request latency inside the agent, by plan kind and plan.',
    labelNames: ['plan_kind', 'plan'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const fallbacks = new Counter({
    name: 'tandem_fallbacks_total',
    help: 'Requests whose remote part failed or ran late and that completed on the edge, by the plan first chosen.',
    labelNames: ['plan'] as const,
    registers: [registry],
  });
  const malformed = new Counter({
    name: 'tandem_malformed_messages_total',
    help: 'Messages refused before inference (undecodable, invalid, oversize).',
    labelNames: ['front', 'reason'] as const,
    registers: [registry],
  });
  const residencyRefusals = new Counter({
    name: 'tandem_residency_refusals_total',
    help: 'Requests or writes the residency policy refused, by data class.',
    labelNames: ['data_class'] as const,
    registers: [registry],
  });
  const duplicates = new Counter({
    name: 'tandem_duplicate_requests_total',
    help: 'Redelivered requests (same request id) answered from the reply cache or joined to the running request.',
    labelNames: ['front'] as const,
    registers: [registry],
  });
  const replyTopicsRefused = new Counter({
    name: 'tandem_reply_topics_refused_total',
    help: 'Replies published on the results topic instead of the reply topic the request named, by front and broken rule (wildcard, reserved, invalid, too_long, prefix).',
    labelNames: ['front', 'reason'] as const,
    registers: [registry],
  });
  const repliesDropped = new Counter({
    name: 'tandem_replies_dropped_total',
    help: 'Replies given up, by front and reason (broker_refused: the broker dropped the connection each time the reply was in flight; shutdown).',
    labelNames: ['front', 'reason'] as const,
    registers: [registry],
  });
  const compressionError = new Histogram({
    name: 'tandem_cut_compression_relative_error',
    help: "Largest relative error (max |Δ| / max |x|) of a split's cut tensors sent float16 or int8, per request, by encoding.",
    labelNames: ['encoding'] as const,
    buckets: [1e-5, 1e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1],
    registers: [registry],
  });
  const modelUpdates = new Counter({
    name: 'tandem_model_updates_total',
    help: "New model versions applied or refused, by model, source (greengrass) and outcome; code is the refusal's error code.",
    labelNames: ['model', 'source', 'outcome', 'code'] as const,
    registers: [registry],
  });
  const inFlight = new Gauge({ name: 'tandem_in_flight_requests', help: 'Requests being processed now.', registers: [registry] });
  const outboxDepth = new Gauge({
    name: 'tandem_outbox_depth',
    help: 'Results accepted but not yet acknowledged by their store.',
    registers: [registry],
    collect() {
      this.set(options.outboxDepth());
    },
  });
  return {
    registry,
    requests,
    latency,
    fallbacks,
    malformed,
    residencyRefusals,
    duplicates,
    replyTopicsRefused,
    repliesDropped,
    compressionError,
    modelUpdates,
    inFlight,
    outboxDepth,
    observePlan(plan, seconds, fellBack) {
      const label = describePlan(plan);
      latency.observe({ plan_kind: plan.kind, plan: label }, seconds);
      if (fellBack) fallbacks.inc({ plan: label });
    },
  };
}
