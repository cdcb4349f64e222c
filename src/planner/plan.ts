/**
 * What the planner decides and what the runtime executes. The runtime depends on these
 * types; the planner never depends on the runtime.
 */
export type Plan =
  /** `variant`: run this variant of the model (manifest `variants`) instead of the model. */
  | { kind: 'local'; variant?: string }
  /**
   * `encoding`: how the cut tensors travel; absent means float32. `variant`: the edge runs the
   * variant's head and the endpoint its tail (served as `MODEL@VARIANT`).
   */
  | { kind: 'split'; cut: string; endpoint: string; encoding?: CutEncoding; variant?: string }
  | { kind: 'offload'; endpoint: string };

/**
 * How a split's cut tensors travel: as computed (float32), or compressed by the codec to
 * float16 or to int8 with a scale per channel. The lossy ones are eligible only within the
 * caller's output-error budget, as measured by `tandem profile`.
 */
export type CutEncoding = 'float32' | 'float16' | 'int8';

/** The lossy encodings, in the order the profile and the planner list them. */
export const LOSSY_ENCODINGS = ['float16', 'int8'] as const;

export function describePlan(plan: Plan): string {
  switch (plan.kind) {
    case 'local':
      return plan.variant !== undefined ? `local~${plan.variant}` : 'local';
    case 'split':
      return `split@${plan.cut}${plan.encoding !== undefined && plan.encoding !== 'float32' ? `/${plan.encoding}` : ''}${plan.variant !== undefined ? `~${plan.variant}` : ''}→${plan.endpoint}`;
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

/**
 * What residency lets one endpoint receive (src/residency/derived.ts): anything when `raw`,
 * else only a split's features at a cut meeting one of `features` (depth `c<N>` ≥ minCutDepth,
 * head FLOPs share ≥ minFlopsShare), never the input (no offload, no cut carrying an input).
 */
export interface SendLimit {
  raw: boolean;
  features: readonly { minCutDepth?: number; minFlopsShare?: number }[];
}

export interface PlanContext {
  /** Endpoints the residency gate allows for this request's data class. */
  allowedEndpoints: readonly string[];
  /**
   * Residency for derived data, per allowed endpoint; an allowed endpoint not listed takes
   * anything. Pass the same objects across requests: the planner caches by identity.
   */
  sendLimits?: ReadonlyMap<string, SendLimit>;
  /** Absolute deadline, epoch ms, if the caller set one. */
  deadline?: number;
  /** Edge pool queue length right now. */
  edgeQueue?: number;
  /**
   * Bytes an offload of this request sends, when not the profile's input tensors: an encoded
   * image sent as it came (encoded offload), ≈ 10× smaller.
   */
  inputBytes?: number;
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
  /**
   * Optional: the model variants its plans may name, with the SHA-256 of the file each was
   * measured on; the runtime refuses to start when the package does not hold that very file.
   */
  variants?(): ReadonlyArray<{ id: string; modelSha256: string }>;
}
