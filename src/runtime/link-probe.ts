/**
 * Out-of-band link probes. While the edge runs a request locally (or as a split that sends a
 * small tensor), a planner learns nothing about the link from the request itself: a link that
 * got ten times faster would go unnoticed until an exploration, which may be many requests
 * away when the cloud looked far behind. A probe round costs bytes, not the request's time.
 */
import { LARGE_TRANSFER_BYTES } from '../planner/estimators.js';
import type { Plan, PlanChooser, PlanContext } from '../planner/plan.js';
import { ProviderError } from '../providers/errors.js';
import type { ProviderClient } from '../providers/types.js';

/** Body of the small transfers of a probe round (they tell the round trip). */
export const LINK_PROBE_SMALL_BYTES = 256;
/** Body of the large transfer of a probe round (it tells the bandwidth; ≥ the planner's large-transfer threshold). */
export const LINK_PROBE_LARGE_BYTES = 128 * 1024;
/** HTTP request and answer headers a probe moves besides its body, counted into its bytes. */
export const LINK_PROBE_HEADER_BYTES = 160;
/**
 * Small transfers per round; the fastest is reported, as pings are read: delay on a round trip
 * is one-sided (queueing, a host hiccup), and a planner fitting the round's two sizes with a
 * line would tilt it flat on one slow small transfer.
 */
const SMALL_PINGS = 3;

/**
 * One probe round through `send` (one transfer of about `bytes` bytes, resolving with its wall
 * time in ms): the fastest of three small transfers, then one large one, each reported as it
 * completes. Rejects with the first failed transfer's error.
 */
export async function probeRound(send: (bytes: number) => Promise<number>, report: (networkMs: number, bytes: number) => void): Promise<{ smallMs: number; largeMs: number }> {
  let smallMs = Number.POSITIVE_INFINITY;
  for (let i = 0; i < SMALL_PINGS; i++) smallMs = Math.min(smallMs, await send(LINK_PROBE_SMALL_BYTES));
  report(smallMs, LINK_PROBE_SMALL_BYTES + LINK_PROBE_HEADER_BYTES);
  const largeMs = await send(LINK_PROBE_LARGE_BYTES);
  report(largeMs, LINK_PROBE_LARGE_BYTES + LINK_PROBE_HEADER_BYTES);
  return { smallMs, largeMs };
}

type ProbingChooser = PlanChooser & Required<Pick<PlanChooser, 'linkProbesDue' | 'reportLinkProbe'>>;

/** Whether a chooser asks for link probes (the `AdaptivePlanner` does). */
export function wantsLinkProbes(chooser: PlanChooser): chooser is ProbingChooser {
  return typeof chooser.linkProbesDue === 'function' && typeof chooser.reportLinkProbe === 'function';
}

/** Ends a probe round whose transfer overlapped a request's: its time measured both. */
class ProbeYielded extends Error {}

/**
 * Probes, after a request that left the link quiet, the endpoints the chooser has had no
 * bandwidth news from, through the clients that can (`ProviderClient.probeLink`). One round
 * per endpoint at a time; an endpoint whose server has no probe route (a 4xx answer) is not
 * probed again; other failures are left to the requests, which tell the planner about the
 * endpoint's health.
 *
 * Probes yield to requests: a round starts only while no request is using the link, and a
 * request that starts using it aborts the rounds in flight. A transfer that shared the uplink
 * with a request measured neither of them, and a probe must never slow the traffic it serves;
 * what such a transfer took is not reported.
 */
export class LinkProber {
  /** The round in flight per endpoint (one at a time). */
  private readonly rounds = new Map<string, AbortController>();
  private readonly unsupported = new Set<string>();
  /** Requests in flight whose plan uses the link. */
  private remoteRequests = 0;
  /** Counts requests that started using the link: a transfer is clean if it did not change while the transfer ran. */
  private linkEpoch = 0;

  constructor(
    private readonly chooser: ProbingChooser,
    private readonly clients: ReadonlyMap<string, ProviderClient>,
    private readonly timeoutMs = 10_000,
  ) {}

  /**
   * Tells the prober a request is starting with `plan`: one that uses the link aborts the
   * rounds in flight and holds new ones off until the returned function is called (once the
   * request's transfers are over).
   */
  requestStarting(plan: Plan): () => void {
    if (plan.kind === 'local') return () => undefined;
    this.remoteRequests += 1;
    this.linkEpoch += 1;
    for (const round of this.rounds.values()) round.abort(new ProbeYielded('a request started using the link'));
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.remoteRequests -= 1;
    };
  }

  /** Starts the rounds due after a request that moved `bytesMoved` bytes; resolves (never rejects) when they end, or undefined when none is due. */
  afterRequest(context: PlanContext, bytesMoved: number): Promise<void> | undefined {
    // A request that moved a large tensor measured the link itself; one in flight is using it.
    if (bytesMoved >= LARGE_TRANSFER_BYTES || this.remoteRequests > 0) return undefined;
    const due = this.chooser.linkProbesDue(context).filter((name) => !this.rounds.has(name) && !this.unsupported.has(name) && this.clients.get(name)?.probeLink !== undefined);
    if (due.length === 0) return undefined;
    return Promise.all(due.map((name) => this.probe(name))).then(() => undefined);
  }

  private async probe(name: string): Promise<void> {
    const client = this.clients.get(name);
    const send = client?.probeLink?.bind(client);
    if (!send) return;
    const round = new AbortController();
    this.rounds.set(name, round);
    const timer = setTimeout(() => round.abort(new Error(`probe round over ${this.timeoutMs} ms`)), this.timeoutMs);
    try {
      const cleanSend = async (bytes: number): Promise<number> => {
        const epoch = this.linkEpoch;
        const ms = await send(bytes, { signal: round.signal });
        if (epoch !== this.linkEpoch) throw new ProbeYielded('a request used the link during the transfer');
        return ms;
      };
      await probeRound(cleanSend, (networkMs, bytes) => this.chooser.reportLinkProbe(name, networkMs, bytes));
    } catch (error) {
      if (error instanceof ProviderError && error.code === 'PROVIDER_VALIDATION') this.unsupported.add(name);
    } finally {
      clearTimeout(timer);
      this.rounds.delete(name);
    }
  }
}
