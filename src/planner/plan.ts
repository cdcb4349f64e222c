/**
 * What the planner decides and what the runtime executes. The runtime depends on these
 * types; the planner never depends on the runtime.
 */
export type Plan =
  | { kind: 'local' }
  | { kind: 'split'; cut: string; endpoint: string }
  | { kind: 'offload'; endpoint: string };

export function describePlan(plan: Plan): string {
  switch (plan.kind) {
    case 'local':
      return 'local';
    case 'split':
      return `split@${plan.cut}→${plan.endpoint}`;
    case 'offload':
      return `offload→${plan.endpoint}`;
  }
}

/** A request's measured timing, fed back to the planner after every request. */
export interface Observation {
  plan: Plan;
  ok: boolean;
  /** Whether the request completed on the edge after the remote part failed or ran late. */
  fellBack: boolean;
  queueMs: number;
  edgeMs: number;
  encodeMs: number;
  /** Network time: wall time of the remote call minus the remote compute it reported. */
  networkMs: number;
  remoteMs: number;
  decodeMs: number;
  totalMs: number;
  bytesSent: number;
  bytesReceived: number;
  /** Epoch milliseconds when the request finished. */
  at: number;
  /**
   * Epoch milliseconds when the remote call was sent (same clock as the planner's `now`);
   * absent when none was. Requests overlap, so their outcomes arrive out of order with the
   * endpoint's circuit breaker: a failure of a request sent before the breaker last saw the
   * endpoint answer, or before it sent its probe, does not trip it or lengthen its back-off
   * (see `EndpointHealth`). Without it the outcome counts as sent just now.
   */
  sentAt?: number;
  /**
   * `false` when the request failed or fell back for a reason that says nothing of its
   * endpoint: the call was never made (residency refused it, too little time was left, the
   * head failed on the edge) or the caller gave up on it. The planner then leaves the
   * endpoint's health alone. Absent, a failure or fallback counts against the endpoint.
   */
  endpointAtFault?: boolean;
  /**
   * When the endpoint failed with a Retry-After (`ProviderError.retryAfterMs`): how long it
   * asked not to be called, ms. The planner counts it from when it is told, which is later than
   * the answer by the edge fallback's time: the pause errs long, never short.
   */
  retryAfterMs?: number;
}

export interface PlanContext {
  /** Endpoints the residency gate allows for this request's data class. */
  allowedEndpoints: readonly string[];
  /** Absolute deadline, epoch ms, if the caller set one. */
  deadline?: number;
  /** Edge pool queue length right now. */
  edgeQueue?: number;
}

/** Anything that can choose a plan per request and learn from the outcome. */
export interface PlanChooser {
  choose(context: PlanContext): Plan;
  observe(observation: Observation): void;
  /**
   * Optional: endpoints whose link the chooser wants measured out of band (the runtime probes
   * them after a request that left the link quiet, when their client can send probes).
   */
  linkProbesDue?(context: PlanContext): string[];
  /** Optional: one out-of-band transfer of `bytes` (both directions, headers included) that took `networkMs`. */
  reportLinkProbe?(endpoint: string, networkMs: number, bytes: number): void;
}
