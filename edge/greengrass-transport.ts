/**
 * The AWS IoT Greengrass v2 front: the agent runs as a Greengrass component and talks to
 * the nucleus over its IPC socket with `aws-iot-device-sdk-v2`'s `greengrasscoreipc`
 * client, instead of holding its own MQTT connection and device certificate.
 *
 * - `iotcore` mode relays through the nucleus's MQTT connection to AWS IoT Core
 *   (SubscribeToIoTCore / PublishToIoTCore; needs aws.greengrass.ipc.mqttproxy access),
 *   with the MQTT 5 response topic and correlation data honoured as on plain MQTT.
 * - `local` mode uses the nucleus's local publish/subscribe between components
 *   (SubscribeToTopic / PublishToTopic; needs aws.greengrass.ipc.pubsub access).
 *
 * With a `configuration` follower, it also follows one key of the component's own
 * configuration (SubscribeToConfigurationUpdate, then GetConfiguration): read at every
 * (re)connect and after changes under the key settle, and handed to the follower
 * (edge/greengrass-config.ts: model versions).
 *
 * The nucleus gives the component its socket path and token in
 * AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT and SVCUID, which the config loader
 * reads (`loadEdgeConfig`'s `nucleus`) and the agent passes in. An IPC client can only
 * connect once, so a lost connection (nucleus restart) is handled by building a new client,
 * with exponential backoff.
 */
import { greengrasscoreipc, io } from 'aws-iot-device-sdk-v2';
import type { Logger } from 'pino';
import { EdgeStartError, expandTopic, type GreengrassConfig } from './config.js';
import type { AgentMetrics } from './metrics.js';
import { replyRulesFor, routeReply } from './reply-route.js';
import type { ReplyTopicRules } from './reply-topic.js';
import type { MessageSink, Transport } from './transport.js';

type IpcClient = greengrasscoreipc.Client;
type Payload = string | ArrayBuffer | ArrayBufferView | undefined;

export interface GreengrassTransportOptions {
  config: GreengrassConfig;
  logger: Logger;
  /** IPC socket path (the nucleus's AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT). */
  socketPath?: string;
  /** Component auth token (the nucleus's SVCUID). */
  authToken?: string;
  /** Thing name for the topic templates; defaults to config (which the loader fills from AWS_IOT_THING_NAME). */
  thingName?: string;
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  /**
   * Time allowed for connecting and subscribing (default 10 s). The IPC handshake has no
   * deadline of its own: a nucleus that accepts the socket and never answers (restarting, or
   * hung) would hold a start, or a reconnect, forever. Past it the attempt is closed and, on a
   * reconnect, retried with back-off.
   */
  connectTimeoutMs?: number;
  /** Where refused reply topics are counted. */
  metrics?: Pick<AgentMetrics, 'replyTopicsRefused'>;
  /** A key of the component configuration to follow. */
  configuration?: ConfigurationFollower;
  /**
   * How long after a change under the followed key it is read (default 250 ms): a deployment
   * changes each leaf apart (an entry's path, then its hash) and the nucleus sends an event per
   * leaf, so the read waits for the burst to end rather than catch a half-written entry.
   */
  configurationSettleMs?: number;
}

/** One top-level key of the component configuration, followed over IPC. */
export interface ConfigurationFollower {
  readonly key: string;
  /** The key's value (undefined when the configuration has none); resolves once it is applied. */
  offer(value: unknown): Promise<void>;
  /** Called when the transport stops: work in progress ends. */
  close(): Promise<void>;
}

function toBuffer(payload: Payload): Buffer {
  if (payload === undefined) return Buffer.alloc(0);
  if (typeof payload === 'string') return Buffer.from(payload, 'utf8');
  if (payload instanceof ArrayBuffer) return Buffer.from(payload);
  return Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
}

export class GreengrassTransport implements Transport {
  readonly name = 'greengrass';
  readonly requestTopic: string;
  readonly resultsTopic: string;
  private readonly replyRules: ReplyTopicRules;
  private readonly options: GreengrassTransportOptions;
  private readonly logger: Logger;
  private readonly socketPath: string;
  private readonly authToken: string | undefined;
  private client: IpcClient | undefined;
  private sink: MessageSink | undefined;
  private stopped = false;
  private attempts = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private configurationTimer: NodeJS.Timeout | undefined;
  /** Reads of the configuration started: only the newest one's value is applied. */
  private configurationReads = 0;
  /** Clients this transport has closed: no reply may go out on one of them. */
  private readonly closed = new WeakSet<IpcClient>();

  constructor(options: GreengrassTransportOptions) {
    this.options = options;
    this.logger = options.logger.child({ front: 'greengrass' });
    const thing = options.thingName ?? options.config.thingName;
    if (thing === undefined || thing === '') {
      throw new EdgeStartError('EDGE_GREENGRASS_CONFIG', 'greengrass.thingName is not set and AWS_IOT_THING_NAME is empty');
    }
    this.requestTopic = expandTopic(options.config.topics.request, thing);
    this.resultsTopic = expandTopic(options.config.topics.results, thing);
    this.replyRules = replyRulesFor(options.config.topics, thing);
    this.socketPath = options.socketPath ?? '';
    this.authToken = options.authToken;
  }

  async start(sink: MessageSink): Promise<void> {
    if (this.socketPath === '') {
      throw new EdgeStartError(
        'EDGE_GREENGRASS_SOCKET',
        'no Greengrass IPC socket: AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT is unset (is the agent running as a Greengrass component?)',
      );
    }
    this.sink = sink;
    this.stopped = false;
    try {
      await this.connect();
    } catch (error) {
      throw new EdgeStartError('EDGE_GREENGRASS_CONNECT', `cannot connect to the Greengrass nucleus at ${this.socketPath}: ${describe(error)}`, {
        cause: error,
        retryable: true,
      });
    }
  }

  private async connect(): Promise<void> {
    const authToken = this.authToken;
    const client = greengrasscoreipc.createClient({
      hostName: this.socketPath,
      port: 0,
      socketOptions: new io.SocketOptions(io.SocketType.STREAM, io.SocketDomain.LOCAL),
      connectTransform: async (options) => {
        if (authToken !== undefined) options.message.payload = JSON.stringify({ authToken });
        return options.message;
      },
    });
    client.on('disconnection', (event) => {
      if (this.client !== client || this.stopped) return;
      this.logger.warn({ reason: event?.reason.message }, 'lost the Greengrass IPC connection; reconnecting');
      this.client = undefined;
      this.closed.add(client);
      void client.close().catch(() => undefined);
      this.scheduleReconnect();
    });
    const timeoutMs = this.options.connectTimeoutMs ?? 10_000;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer from the nucleus within ${timeoutMs} ms (connect and subscribe)`)), timeoutMs);
    });
    try {
      await Promise.race([(async () => {
        await client.connect();
        await this.subscribe(client);
      })(), timedOut]);
    } catch (error) {
      this.closed.add(client);
      await client.close().catch(() => undefined);
      throw error;
    } finally {
      clearTimeout(timer);
    }
    this.client = client;
    this.attempts = 0;
    this.logger.info({ mode: this.options.config.mode, topic: this.requestTopic }, 'subscribed through Greengrass IPC');
  }

  private scheduleReconnect(): void {
    if (this.stopped) return;
    const min = this.options.reconnectMinMs ?? 250;
    const max = this.options.reconnectMaxMs ?? 30_000;
    const base = Math.min(max, min * 2 ** Math.min(this.attempts, 16));
    this.attempts++;
    const delay = Math.round(base / 2 + (Math.random() * base) / 2);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.connect().catch((error: unknown) => {
        this.logger.warn({ err: error, attempt: this.attempts }, 'Greengrass IPC reconnect failed');
        this.scheduleReconnect();
      });
    }, delay);
  }

  private async subscribe(client: IpcClient): Promise<void> {
    if (this.options.config.mode === 'iotcore') {
      const op = client.subscribeToIoTCore({ topicName: this.requestTopic, qos: greengrasscoreipc.model.QOS.AT_LEAST_ONCE });
      op.on('message', (event) => {
        const m = event.message;
        if (!m) return;
        this.deliver(client, toBuffer(m.payload), m.contentType, m.responseTopic, m.correlationData === undefined ? undefined : toBuffer(m.correlationData));
      });
      op.on('streamError', (error) => this.logger.warn({ err: error }, 'IoT Core subscription stream error'));
      await op.activate();
    } else {
      const op = client.subscribeToTopic({ topic: this.requestTopic });
      op.on('message', (event) => {
        if (event.binaryMessage) this.deliver(client, toBuffer(event.binaryMessage.message), undefined);
        else if (event.jsonMessage) this.deliver(client, Buffer.from(JSON.stringify(event.jsonMessage.message ?? null)), 'application/json');
      });
      op.on('streamError', (error) => this.logger.warn({ err: error }, 'local pub/sub subscription stream error'));
      await op.activate();
    }
    const follower = this.options.configuration;
    if (follower) {
      // Requests are served whether or not the configuration can be followed.
      await this.followConfiguration(client, follower).catch((error: unknown) =>
        this.logger.warn({ err: error, key: follower.key }, 'cannot follow the component configuration; tried again at the next reconnect'),
      );
    }
  }

  /**
   * Subscribes to the whole configuration rather than to the key: subscribing to a key the
   * configuration does not have fails, and the key is absent until a deployment sets it.
   */
  private async followConfiguration(client: IpcClient, follower: ConfigurationFollower): Promise<void> {
    const op = client.subscribeToConfigurationUpdate({ keyPath: [] });
    op.on('message', (event) => {
      if (event.configurationUpdateEvent?.keyPath[0] === follower.key) this.scheduleConfigurationRead(client, follower, this.options.configurationSettleMs ?? 250);
    });
    op.on('streamError', (error) => this.logger.warn({ err: error }, 'configuration update subscription stream error'));
    await op.activate();
    // Changes made while there was no connection (or before the agent started) are caught here.
    this.scheduleConfigurationRead(client, follower, 0);
  }

  private scheduleConfigurationRead(client: IpcClient, follower: ConfigurationFollower, delayMs: number): void {
    if (this.stopped) return;
    clearTimeout(this.configurationTimer);
    this.configurationTimer = setTimeout(() => {
      this.configurationTimer = undefined;
      void this.readConfiguration(client, follower);
    }, delayMs);
  }

  /** Reads the whole configuration, so that an absent key is not an error to tell from others. */
  private async readConfiguration(client: IpcClient, follower: ConfigurationFollower): Promise<void> {
    const read = ++this.configurationReads;
    let value: unknown;
    try {
      const response = await client.getConfiguration({ keyPath: [] });
      const all: unknown = response.value;
      value = all !== null && typeof all === 'object' ? (all as Record<string, unknown>)[follower.key] : undefined;
    } catch (error) {
      // A closed client is replaced by a reconnect, which reads again.
      if (!this.closed.has(client) && !this.stopped) this.logger.warn({ err: error, key: follower.key }, 'cannot read the component configuration; it is read again at its next change');
      return;
    }
    if (this.stopped || read !== this.configurationReads) return;
    await follower.offer(value).catch((error: unknown) => this.logger.error({ err: error, key: follower.key }, 'applying the component configuration failed'));
  }

  /** `origin`: the client the message came on, which may not have finished connecting yet. */
  private deliver(origin: IpcClient, payload: Buffer, contentType: string | undefined, responseTopic?: string, correlationData?: Buffer): void {
    const sink = this.sink;
    if (!sink) return;
    // IPC delivery has no acknowledgement to hold back; QoS 1 towards IoT Core is the nucleus's job.
    sink
      .accept(this.name, { payload, contentType }, async (reply) => {
        const routed = routeReply(reply, responseTopic ?? reply.replyTo, this.replyRules, this.resultsTopic);
        if (routed.refused) {
          this.options.metrics?.replyTopicsRefused.inc({ front: this.name, reason: routed.refused.reason });
          this.logger.warn({ err: routed.refused, resultsTopic: this.resultsTopic }, 'reply topic refused; the error reply goes to the results topic');
        }
        await this.publish(routed.topic, routed.payload, reply.contentType, correlationData, origin);
      })
      .catch((error: unknown) => this.logger.error({ err: error }, 'could not hand a Greengrass message to the agent'));
  }

  private async publish(topic: string, payload: Buffer, contentType: string, correlationData?: Buffer, origin?: IpcClient): Promise<void> {
    // A subscription's first messages can be handed over before its activation settles, so
    // before connect() has made the client current: the reply then goes out on the client the
    // request came on. Once a client is current (the same one, or a newer one after a
    // reconnect), the reply uses it.
    const client = this.client ?? (origin !== undefined && !this.closed.has(origin) ? origin : undefined);
    if (!client) throw new EdgeStartError('EDGE_GREENGRASS_DISCONNECTED', 'no Greengrass IPC connection to publish the reply on', { retryable: true });
    if (this.options.config.mode === 'iotcore') {
      await client.publishToIoTCore({
        topicName: topic,
        qos: greengrasscoreipc.model.QOS.AT_LEAST_ONCE,
        payload,
        contentType,
        ...(correlationData ? { correlationData } : {}),
      });
    } else {
      await client.publishToTopic({ topic, publishMessage: { binaryMessage: { message: payload } } });
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    clearTimeout(this.configurationTimer);
    const client = this.client;
    this.client = undefined;
    if (client) {
      this.closed.add(client);
      await client.close();
    }
    await this.options.configuration?.close();
  }
}

function describe(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (error !== null && typeof error === 'object' && 'description' in error) return String((error as { description: unknown }).description);
  return String(error);
}
