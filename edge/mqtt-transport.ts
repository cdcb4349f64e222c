/**
 * The plain MQTT front (the `mqtt` package), for any broker: AWS IoT Core, mosquitto, aedes.
 * Requests arrive on `tandem/{thingName}/infer` at QoS 1 on a persistent session (fixed
 * client id, clean = false) so the broker keeps them while the agent is away; a request is
 * acknowledged only once the agent has taken it on, so one lost in a crash or a broker
 * restart is redelivered. Replies go to the MQTT 5 response topic with the correlation
 * data when the requester set them, else to the request's `replyTo`, else to the device's
 * results topic; a reply topic that breaks the rules (edge/reply-topic.ts) gets an error reply
 * on the results topic instead.
 *
 * A publish the broker refuses by dropping the connection (MQTT 3.1.1 has no negative PUBACK;
 * AWS IoT Core does this for a topic its policy denies) would be sent again after every
 * reconnect and drop it again, for as long as the persistent session lives; and mqtt.js holds
 * every other publish (and its 'connect' event) until that resend is acknowledged, so the front
 * stops answering. A reply that was sent on {@link MAX_REPLY_STRIKES} connections that each
 * dropped before it was acknowledged is therefore given up.
 */
import { readFile } from 'node:fs/promises';
import mqtt, { type IClientOptions, type IClientPublishOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { EdgeStartError, expandTopic, type MqttConfig } from './config.js';
import type { AgentMetrics } from './metrics.js';
import { replyRulesFor, routeReply } from './reply-route.js';
import type { ReplyTopicRules } from './reply-topic.js';
import type { MessageSink, Transport } from './transport.js';

/** Connection losses with a reply in flight after which that reply is given up. */
export const MAX_REPLY_STRIKES = 3;

/** Default for how long `stop` waits for unacknowledged replies before giving up on them. */
const STOP_TIMEOUT_MS = 5000;

type PublishCallback = (error?: Error) => void;

/** A reply publish not yet acknowledged. */
interface InFlightReply {
  topic: string;
  done: PublishCallback;
  /** mqtt.js's packet id, known once the packet has been sent. */
  messageId?: number;
  /** Sent on the current connection. */
  sent: boolean;
  /** Connections that dropped while it was in flight on them. */
  strikes: number;
}

export interface MqttTransportOptions {
  config: MqttConfig;
  logger: Logger;
  /** How long `start` waits for the first connection. */
  connectTimeoutMs?: number;
  /** Where refused reply topics and dropped replies are counted. */
  metrics?: Pick<AgentMetrics, 'replyTopicsRefused' | 'repliesDropped'>;
}

export class MqttTransport implements Transport {
  readonly name = 'mqtt';
  readonly requestTopic: string;
  readonly resultsTopic: string;
  private readonly config: MqttConfig;
  private readonly logger: Logger;
  private readonly connectTimeoutMs: number;
  private readonly replyRules: ReplyTopicRules;
  private readonly metrics: MqttTransportOptions['metrics'];
  private client: MqttClient | undefined;
  private attempts = 0;
  /** By payload until first sent (mqtt.js sends the very Buffer it is given), then by packet id. */
  private readonly inFlight = new Map<Buffer, InFlightReply>();
  private readonly byMessageId = new Map<number, InFlightReply>();

  constructor(options: MqttTransportOptions) {
    this.config = options.config;
    this.logger = options.logger.child({ front: 'mqtt' });
    this.connectTimeoutMs = options.connectTimeoutMs ?? 30_000;
    this.requestTopic = expandTopic(this.config.topics.request, this.config.thingName);
    this.resultsTopic = expandTopic(this.config.topics.results, this.config.thingName);
    this.replyRules = replyRulesFor(this.config.topics, this.config.thingName);
    this.metrics = options.metrics;
  }

  /** The client id used for the persistent session. */
  get clientId(): string {
    return this.config.clientId ?? `tandem-${this.config.thingName}`;
  }

  async start(sink: MessageSink): Promise<void> {
    const c = this.config;
    const options: IClientOptions = {
      clientId: this.clientId,
      clean: false,
      protocolVersion: c.protocolVersion,
      keepalive: c.keepaliveSeconds,
      reconnectPeriod: c.reconnectMinMs,
      connectTimeout: Math.min(this.connectTimeoutMs, 30_000),
      resubscribe: true,
      username: c.username,
      password: c.password,
    };
    if (c.protocolVersion === 5) options.properties = { sessionExpiryInterval: c.sessionExpirySeconds };
    if (c.tls) {
      try {
        options.cert = await readFile(c.tls.cert);
        options.key = await readFile(c.tls.key);
        if (c.tls.ca !== undefined) options.ca = await readFile(c.tls.ca);
      } catch (error) {
        throw new EdgeStartError('EDGE_TLS_FILES', `cannot read the MQTT TLS files: ${(error as Error).message}`, { cause: error });
      }
      options.rejectUnauthorized = c.tls.rejectUnauthorized;
      // AWS IoT Core needs SNI; it is the URL's host, which mqtt.js passes as servername.
    }
    const client = mqtt.connect(c.url, options);
    this.client = client;

    client.handleMessage = (packet, callback) => {
      this.onMessage(sink, packet).then(
        () => callback(),
        (error: unknown) => {
          this.logger.error({ err: error }, 'message handler failed');
          callback();
        },
      );
    };
    client.on('packetsend', (packet) => {
      if (packet.cmd !== 'publish' || packet.messageId === undefined) return;
      // A re-send from mqtt.js's store carries a copy of the payload, but the same packet id.
      const reply = this.byMessageId.get(packet.messageId) ?? (Buffer.isBuffer(packet.payload) ? this.inFlight.get(packet.payload) : undefined);
      if (reply === undefined) return;
      reply.sent = true;
      reply.messageId = packet.messageId;
      this.byMessageId.set(packet.messageId, reply);
    });
    client.on('connect', (connack) => {
      this.attempts = 0;
      client.options.reconnectPeriod = c.reconnectMinMs;
      this.logger.info({ url: c.url, clientId: this.clientId, sessionPresent: connack.sessionPresent }, 'connected to the broker');
      // A persistent session keeps the subscription; subscribing again is harmless and covers a broker that lost it.
      client.subscribe(this.requestTopic, { qos: 1 }, (error) => {
        if (error) this.logger.error({ err: error, topic: this.requestTopic }, 'subscribe failed');
        else this.logger.info({ topic: this.requestTopic }, 'subscribed');
      });
    });
    client.on('close', () => {
      this.strikeInFlight(client);
      // Exponential backoff with jitter between reconnect attempts; mqtt.js reads the period at each attempt.
      this.attempts++;
      const base = Math.min(c.reconnectMaxMs, c.reconnectMinMs * 2 ** Math.min(this.attempts - 1, 16));
      client.options.reconnectPeriod = Math.max(c.reconnectMinMs, Math.round(base / 2 + (Math.random() * base) / 2));
    });
    client.on('offline', () => this.logger.warn('broker connection lost; reconnecting'));
    let lastError: Error | undefined;
    client.on('error', (error) => {
      lastError = error;
      this.logger.warn({ err: error }, 'MQTT client error');
    });

    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        client.removeListener('connect', onConnect);
        const why = lastError ? `: ${lastError.message}` : '';
        reject(new EdgeStartError('EDGE_MQTT_CONNECT', `no connection to ${c.url} within ${this.connectTimeoutMs} ms${why}`, { retryable: true, cause: lastError }));
      }, this.connectTimeoutMs);
      const onConnect = (): void => {
        clearTimeout(timer);
        client.subscribe(this.requestTopic, { qos: 1 }, (error) => {
          if (error) reject(new EdgeStartError('EDGE_MQTT_SUBSCRIBE', `cannot subscribe to ${this.requestTopic}: ${error.message}`, { cause: error }));
          else resolve();
        });
      };
      client.once('connect', onConnect);
    }).catch(async (error: unknown) => {
      await client.endAsync(true);
      throw error;
    });
  }

  /** Resolves when the message may be acknowledged. */
  private async onMessage(sink: MessageSink, packet: IPublishPacket): Promise<void> {
    if (packet.topic !== this.requestTopic) return;
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    const props = packet.properties;
    const responseTopic = props?.responseTopic;
    const correlationData = props?.correlationData;
    await sink.accept(this.name, { payload, contentType: props?.contentType }, async (reply) => {
      const routed = routeReply(reply, responseTopic ?? reply.replyTo, this.replyRules, this.resultsTopic);
      if (routed.refused) {
        this.metrics?.replyTopicsRefused.inc({ front: this.name, reason: routed.refused.reason });
        this.logger.warn({ err: routed.refused, resultsTopic: this.resultsTopic }, 'reply topic refused; the error reply goes to the results topic');
      }
      const client = this.client;
      if (!client) return;
      await this.publishReply(client, routed.topic, routed.payload, {
        qos: 1,
        properties: this.config.protocolVersion === 5 ? { contentType: reply.contentType, ...(correlationData ? { correlationData } : {}) } : undefined,
      });
    });
  }

  private publishReply(client: MqttClient, topic: string, payload: Buffer, options: IClientPublishOptions): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const done: PublishCallback = (error) => {
        const reply = this.inFlight.get(payload);
        if (reply?.messageId !== undefined) this.byMessageId.delete(reply.messageId);
        this.inFlight.delete(payload);
        if (error) reject(error);
        else resolve();
      };
      this.inFlight.set(payload, { topic, done, sent: false, strikes: 0 });
      client.publish(topic, payload, options, done);
    });
  }

  /** The connection dropped: a reply in flight on it takes a strike, and is given up at the last. */
  private strikeInFlight(client: MqttClient): void {
    for (const reply of [...this.inFlight.values()]) {
      if (!reply.sent) continue;
      reply.sent = false;
      reply.strikes++;
      if (reply.strikes < MAX_REPLY_STRIKES) continue;
      this.logger.error({ topic: reply.topic, strikes: reply.strikes }, 'the broker dropped the connection each time this reply was in flight; giving it up');
      this.metrics?.repliesDropped.inc({ front: this.name, reason: 'broker_refused' });
      this.giveUp(client, reply);
    }
  }

  /** Removes a publish from mqtt.js's queue and session store, failing its callback. */
  private giveUp(client: MqttClient, reply: InFlightReply): void {
    if (reply.messageId !== undefined && client.outgoing[reply.messageId] !== undefined) client.removeOutgoingMessage(reply.messageId);
    else reply.done(new Error('reply given up'));
  }

  /**
   * Waits up to `timeoutMs` for the replies in flight to be acknowledged, then gives up on the
   * rest and disconnects. mqtt.js's own graceful end waits for them with no bound, and stops
   * reconnecting meanwhile, so with the broker away it would never return.
   */
  async stop(timeoutMs = STOP_TIMEOUT_MS): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (!client) return;
    const until = Date.now() + timeoutMs;
    while (this.inFlight.size > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, Math.min(25, until - Date.now())));
    if (this.inFlight.size > 0) {
      this.logger.warn({ replies: this.inFlight.size, timeoutMs }, 'replies still unacknowledged at shutdown; giving them up');
      this.metrics?.repliesDropped.inc({ front: this.name, reason: 'shutdown' }, this.inFlight.size);
      for (const reply of [...this.inFlight.values()]) this.giveUp(client, reply);
    }
    await client.endAsync(!client.connected || Object.keys(client.outgoing).length > 0);
  }
}
