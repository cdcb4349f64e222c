/**
 * The one interface every message front implements (plain MQTT, Greengrass IPC). HTTP is
 * request/response and talks to the core directly. While the agent drains, the core answers
 * new requests with a retryable AGENT_DRAINING error, so transports need no pause of their own.
 */
import type { InboundMessage, Respond } from './agent.js';

/** Where transports deliver messages: the agent core. */
export interface MessageSink {
  /** Resolves when the message may be acknowledged to the broker. */
  accept(front: string, message: InboundMessage, respond: Respond): Promise<void>;
}

export interface Transport {
  /** Front name used in logs and metric labels. */
  readonly name: string;
  /** Connects, subscribes and starts delivering requests to `sink`. */
  start(sink: MessageSink): Promise<void>;
  /**
   * Disconnects after sending the replies already queued, giving up on those still unsent
   * after `timeoutMs` (when given) so that shutdown keeps its bound whatever the broker does.
   */
  stop(timeoutMs?: number): Promise<void>;
}
