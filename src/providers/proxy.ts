/**
 * Outbound proxies for every provider client and result store: which proxy, if any, a
 * connection to a URL goes through, and the agents that make it so. The decision is taken here,
 * once, for every SDK: an endpoint's or store's own `proxy` setting, else the environment
 * (HTTPS_PROXY / HTTP_PROXY, NO_PROXY) as the caller read it: the library reads no environment
 * itself, the config loaders and the CLI pass {@link proxyEnvironment} of theirs, and without one
 * only `proxy` settings count. The SDKs underneath each read some of these variables
 * themselves, each with its own NO_PROXY rules (gaxios, grpc-js, teeny-request) or none (the AWS
 * SDK, node:https, urllib): the clients hand them this module's agents, or turn their own
 * handling off, so that the same rules apply on every transport (docs/guide/network.md).
 *
 * Connections go through a proxy as HTTP CONNECT tunnels (`https-proxy-agent`), for `http://`
 * targets too. A proxy that refuses the tunnel fails the call with `PROVIDER_PROXY`, never with
 * what would read as the endpoint's own answer.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { createHash } from 'node:crypto';
import { Agent as HttpAgent, type ClientRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { BlockList, connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { googleAuthLibrary } from 'google-gax';
import type { HttpsProxyAgent as HttpsProxyAgentType } from 'https-proxy-agent';
import { z } from 'zod';
import { LazyValue } from '../lazy.js';
import { causeChain, ProviderError } from './errors.js';

/**
 * An endpoint's or a store's `proxy`: a proxy URL (`http://[user:password@]host:port`, or
 * `https://` for a proxy spoken to over TLS) that all its connections go through, NO_PROXY
 * notwithstanding; or `false` / `'none'`: every connection direct, whatever the environment.
 * Absent: the environment decides.
 */
export type ProxySetting = string | false;

/** The proxy variables of an environment, as read by {@link proxyEnvironment}. */
export interface ProxyEnvironment {
  /** For `https://` targets: HTTPS_PROXY, else https_proxy. */
  https?: string;
  /** For `http://` targets: HTTP_PROXY, else http_proxy. */
  http?: string;
  /** NO_PROXY, else no_proxy. */
  noProxy?: string;
}

/**
 * Reads the proxy variables of `env` (the loaders and the CLI hand it the process's; an
 * embedder does the same to have them apply); an empty value counts as unset.
 */
export function proxyEnvironment(env: Readonly<Record<string, string | undefined>>): ProxyEnvironment {
  const pick = (...names: string[]): string | undefined => {
    for (const n of names) {
      const v = env[n]?.trim();
      if (v) return v;
    }
    return undefined;
  };
  const https = pick('HTTPS_PROXY', 'https_proxy');
  const http = pick('HTTP_PROXY', 'http_proxy');
  const noProxy = pick('NO_PROXY', 'no_proxy');
  return { ...(https ? { https } : {}), ...(http ? { http } : {}), ...(noProxy ? { noProxy } : {}) };
}

/**
 * For the config loaders: hands `env` (their {@link proxyEnvironment}) to every endpoint and to
 * the options of each store kind that makes network calls (`stores.s3`, `.gcs`, `.oss`), and of
 * the key ring's KMS clients (`stores.kms`), where none is set yet. Nothing when `env` names no
 * variable. Mutates its arguments.
 */
export function withProxyEnvironment(endpoints: readonly object[], stores: Record<string, Record<string, unknown>>, env: ProxyEnvironment): void {
  if (env.https === undefined && env.http === undefined && env.noProxy === undefined) return;
  // EndpointConfig.proxyEnv: set here only, never from a file (the schemas have no such key).
  for (const e of endpoints as { proxyEnv?: ProxyEnvironment }[]) e.proxyEnv ??= env;
  for (const kind of ['s3', 'gcs', 'oss', 'kms']) stores[kind] = { proxyEnv: env, ...stores[kind] };
}

/** Credentials in a proxy URL, hidden for messages and logs. */
export function redactProxy(proxy: URL): string {
  return `${proxy.protocol}//${proxy.username || proxy.password ? '***@' : ''}${proxy.host}`;
}

/**
 * A proxy URL, checked: `http:` or `https:`, a host, nothing after it but `/`. A value without
 * a scheme (`proxy.corp:3128`, as many tools accept in HTTPS_PROXY) is taken as `http://`.
 * Returns the reason when it is not one.
 */
export function parseProxyUrl(value: string): URL | string {
  const text = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return `"${value}" is not a URL`;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return `a proxy URL is http:// or https://, not ${url.protocol}//`;
  if (url.hostname === '') return 'a proxy URL needs a host';
  if ((url.pathname !== '' && url.pathname !== '/') || url.search !== '' || url.hash !== '') return 'a proxy URL is scheme://[user:password@]host[:port], without a path or query';
  return url;
}

/** `proxy` in configuration: a proxy URL, `false`, or `none` (see {@link ProxySetting}). */
export const ProxySettingSchema = z.union([
  z.literal(false),
  z.string().superRefine((value, ctx) => {
    if (value === 'none') return;
    const url = parseProxyUrl(value);
    if (typeof url === 'string') ctx.addIssue({ code: 'custom', message: `${url} (a proxy URL, false, or none)` });
  }),
]);

type HostMatcher = (host: string, port: number) => boolean;

/** Host names as compared: lower case, no IPv6 brackets, no trailing dot. */
function normalHost(host: string): string {
  return host.toLowerCase().replace(/^\[(.*)\]$/, '$1').replace(/\.$/, '');
}

/** One NO_PROXY entry as a matcher; undefined for an entry that cannot match anything. */
function noProxyEntry(raw: string): HostMatcher | undefined {
  const entry = raw.toLowerCase();
  if (entry === '*') return () => true;
  const cidr = /^([0-9a-f:.]+)\/(\d{1,3})$/.exec(entry);
  if (cidr) {
    const family = isIP(cidr[1] ?? '');
    const bits = Number(cidr[2]);
    if (family === 0 || bits > (family === 4 ? 32 : 128)) return undefined;
    const list = new BlockList();
    list.addSubnet(cidr[1] ?? '', bits, family === 4 ? 'ipv4' : 'ipv6');
    return (host) => {
      const f = isIP(host);
      return f !== 0 && list.check(host, f === 4 ? 'ipv4' : 'ipv6');
    };
  }
  // [v6]:port, [v6], bare v6, host:port, host.
  let host = entry;
  let port: number | undefined;
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry);
  if (bracketed) {
    host = bracketed[1] ?? '';
    port = bracketed[2] === undefined ? undefined : Number(bracketed[2]);
  } else if (isIP(entry) !== 6) {
    const hostPort = /^(.*):(\d+)$/.exec(entry);
    if (hostPort) {
      host = hostPort[1] ?? '';
      port = Number(hostPort[2]);
    }
  }
  const portOk = (p: number): boolean => port === undefined || p === port;
  const family = isIP(host);
  if (family !== 0) {
    const list = new BlockList();
    list.addAddress(host, family === 4 ? 'ipv4' : 'ipv6');
    return (h, p) => {
      const f = isIP(h);
      return f !== 0 && portOk(p) && list.check(h, f === 4 ? 'ipv4' : 'ipv6');
    };
  }
  const name = normalHost(host.replace(/^\*?\./, ''));
  if (name === '') return undefined;
  return (h, p) => portOk(p) && (h === name || h.endsWith(`.${name}`));
}

/**
 * A NO_PROXY list as one matcher of (host, port). Entries are separated by commas or white
 * space and compared without regard to case: `*` matches every host; `example.com`,
 * `.example.com` and `*.example.com` all match example.com and every name under it (never
 * `badexample.com`); an IP address matches that address, in any of its spellings; a CIDR
 * block (`10.0.0.0/8`, `fd00::/8`) matches the addresses in it; `:port` after any of these
 * (`[v6]:port` for IPv6) narrows it to that port. Host names are never resolved: `localhost`
 * does not match 127.0.0.1, nor the other way round. Loopback gets no special treatment.
 */
export function noProxyMatcher(list: string | undefined): HostMatcher {
  const entries = (list ?? '').split(/[\s,]+/).filter((e) => e !== '').map(noProxyEntry).filter((m): m is HostMatcher => m !== undefined);
  return (host, port) => {
    const h = normalHost(host);
    return entries.some((m) => m(h, port));
  };
}

/**
 * Where the connections of one client or store go: the proxy for a target, and the agents that
 * take them there. Built from the client's `proxy` setting and the environment, once.
 */
export class ProxyRoute {
  /** Whether this route takes any decision: it names a proxy, or forces connections direct. */
  readonly active: boolean;
  private readonly fixed: URL | false | undefined;
  private readonly byScheme: { 'https:'?: URL; 'http:'?: URL };
  private readonly bypass: HostMatcher;
  private readonly agents = new Map<string, LazyValue<HttpAgent>>();

  /**
   * `env`: the environment's proxy variables, as a loader read them; none by default.
   * Throws PROVIDER_CONFIG for a `setting` or an environment value that is not a proxy URL;
   * `owner` (`endpoint "x"`, `store "y"`) starts its message.
   */
  constructor(setting: ProxySetting | undefined, owner: string, env: ProxyEnvironment = {}) {
    const parse = (value: string, what: string): URL => {
      const url = parseProxyUrl(value);
      if (typeof url === 'string') throw new ProviderError('PROVIDER_CONFIG', `${owner}: ${what}: ${url}`, { details: { setting: what } });
      return url;
    };
    if (setting === false || setting === 'none') this.fixed = false;
    else if (setting !== undefined) this.fixed = parse(setting, 'proxy');
    this.byScheme = this.fixed === undefined ? { ...(env.https ? { 'https:': parse(env.https, 'HTTPS_PROXY') } : {}), ...(env.http ? { 'http:': parse(env.http, 'HTTP_PROXY') } : {}) } : {};
    this.bypass = noProxyMatcher(this.fixed === undefined ? env.noProxy : undefined);
    this.active = this.fixed !== undefined || this.byScheme['https:'] !== undefined || this.byScheme['http:'] !== undefined;
  }

  /** The proxy a connection to `host:port` over `secure` (TLS) or plain HTTP goes through, if any. */
  proxyForHost(secure: boolean, host: string, port: number): URL | undefined {
    if (this.fixed !== undefined) return this.fixed || undefined;
    const proxy = this.byScheme[secure ? 'https:' : 'http:'];
    return proxy && !this.bypass(host, port) ? proxy : undefined;
  }

  /** The proxy for `url` (its scheme's, unless NO_PROXY matches its host and port), if any. */
  proxyFor(url: URL | string): URL | undefined {
    const u = typeof url === 'string' ? new URL(url) : url;
    const secure = u.protocol === 'https:';
    return this.proxyForHost(secure, u.hostname, Number(u.port || (secure ? 443 : 80)));
  }

  /**
   * The agent for `secure` (https) or plain connections that takes each to its proxy or
   * directly, per target, by this route; `ca` (an endpoint's caFile) is the roots the targets'
   * certificates are checked against. Undefined when the route is not {@link active}: the
   * caller's own agent then stands. One agent per scheme and roots, kept until {@link destroy}.
   */
  agent(secure: boolean, ca?: Buffer): Promise<HttpAgent> | undefined {
    if (!this.active) return undefined;
    const key = `${secure ? 'https' : 'http'}:${ca ? createHash('sha256').update(ca).digest('hex') : ''}`;
    let agent = this.agents.get(key);
    if (!agent) {
      agent = new LazyValue(() => this.makeAgent(secure, ca));
      this.agents.set(key, agent);
    }
    return agent.get();
  }

  /** Closes every agent's connections (pooled and in use). */
  async destroy(): Promise<void> {
    const agents = await Promise.all([...this.agents.values()].map((a) => a.peek()));
    this.agents.clear();
    for (const a of agents) a?.destroy();
  }

  private async makeAgent(secure: boolean, ca: Buffer | undefined): Promise<HttpAgent> {
    const options = { keepAlive: true, noDelay: true };
    // One proxy per scheme here: a fixed one, or the environment's (NO_PROXY picks per target).
    const proxy = this.fixed === undefined ? this.byScheme[secure ? 'https:' : 'http:'] : this.fixed || undefined;
    if (!proxy) return secure ? new HttpsAgent({ ...options, ...(ca ? { ca } : {}) }) : new HttpAgent(options);
    const { HttpsProxyAgent } = await proxyAgentSdk.get();
    const proxied = (tls: boolean, host: string, port: number): boolean => this.proxyForHost(tls, host, port) !== undefined;
    /** CONNECT tunnels through `proxy`, or direct connections where the route says so. */
    class TunnelAgent extends HttpsProxyAgent<string> {
      override async connect(req: ClientRequest, opts: ConnectOpts): Promise<Socket> {
        const host = opts.host ?? '';
        // Some stacks (urllib) give the port as a string.
        const port = Number(opts.port ?? (opts.secureEndpoint ? 443 : 80));
        const target: ConnectOpts = opts.secureEndpoint && ca ? { ...opts, ca } : opts;
        if (!proxied(opts.secureEndpoint, host, port)) return direct(target, host);
        let answer: IncomingMessage | undefined;
        const seen = (connect: IncomingMessage): void => {
          answer = connect;
        };
        req.once('proxyConnect', seen);
        let socket: Socket;
        try {
          socket = await super.connect(req, target);
        } catch (error) {
          throw record(proxyUnreachable(proxy as URL, `${host}:${port}`, error));
        } finally {
          req.removeListener('proxyConnect', seen);
        }
        const status = answer?.statusCode ?? 0;
        if (status !== 200) {
          socket.destroy();
          throw record(proxyRefusal(proxy as URL, `${host}:${port}`, status, answer?.statusMessage));
        }
        return socket;
      }
    }
    return new TunnelAgent(proxy.href, options);
  }
}

// Loaded by the first route that names a proxy.
const proxyAgentSdk = new LazyValue(() => import('https-proxy-agent'));

type ConnectOpts = Parameters<HttpsProxyAgentType<string>['connect']>[1];

/** A connection straight to the target, as node's own agents make it. */
function direct(opts: ConnectOpts, host: string): Socket {
  if (!opts.secureEndpoint) return netConnect(opts);
  const servername = opts.servername ?? (isIP(host) === 0 ? host : undefined);
  return tlsConnect({ ...opts, ...(servername ? { servername } : {}) });
}

/** The proxy answered CONNECT with something other than 200. */
export function proxyRefusal(proxy: URL, target: string, status: number, statusText?: string): ProviderError {
  const details = { proxy: redactProxy(proxy), target, proxyStatus: status };
  const text = `proxy ${redactProxy(proxy)} answered ${status}${statusText ? ` ${statusText}` : ''} to CONNECT ${target}`;
  // 5xx: the proxy could not reach the target (or is failing itself), a network fault worth a
  // retry; anything else is the proxy's policy or its credentials, final until an operator acts.
  if (status >= 500) return new ProviderError('PROVIDER_NETWORK', `${text}: it could not open the tunnel`, { details });
  const hint = status === 407 ? ' (the proxy wants credentials: http://user:password@host:port)' : '';
  return new ProviderError('PROVIDER_PROXY', `${text}: the proxy refused the tunnel${hint}`, { details });
}

/** The proxy could not be reached, or dropped the CONNECT before answering. */
function proxyUnreachable(proxy: URL, target: string, cause: unknown): ProviderError {
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new ProviderError('PROVIDER_NETWORK', `proxy ${redactProxy(proxy)} could not be reached for CONNECT ${target}: ${reason}`, { cause, details: { proxy: redactProxy(proxy), target } });
}

/**
 * The failures of tunnels opened on behalf of one call. Some HTTP stacks (node-fetch, under
 * gaxios) keep only the message of a connection's error: the agent records it here, in the
 * async context of the request, for {@link withProxyFailures} to restore.
 */
const failures = new AsyncLocalStorage<ProviderError[]>();

function record(error: ProviderError): ProviderError {
  failures.getStore()?.push(error);
  return error;
}

/** A proxy's failure among an error's causes, if there is one. */
export function proxyFailure(error: unknown): ProviderError | undefined {
  for (const e of causeChain(error)) if (e instanceof ProviderError && (e.code === 'PROVIDER_PROXY' || (e.code === 'PROVIDER_NETWORK' && e.details['proxy'] !== undefined))) return e;
  return undefined;
}

/**
 * Runs `call`; when it fails after a tunnel of its own failed, fails with that tunnel's error
 * (the transport's as its cause) rather than with what the transport made of it.
 */
export async function withProxyFailures<T>(call: () => Promise<T>): Promise<T> {
  const seen: ProviderError[] = [];
  try {
    return await failures.run(seen, call);
  } catch (error) {
    const found = proxyFailure(error) ?? seen[seen.length - 1];
    if (!found || found === error) throw error;
    throw new ProviderError(found.code, found.message, { cause: error, details: found.details });
  }
}

/**
 * Asks `proxy` for a tunnel to `target` (host:port) and closes it: for transports that keep
 * nothing of a refused tunnel (grpc-js reports only UNAVAILABLE). Resolves with the refusal, or
 * undefined when the proxy opens the tunnel (the failure was then the endpoint's).
 */
export async function probeTunnel(proxy: URL, target: string, timeoutMs = 5_000): Promise<ProviderError | undefined> {
  const { request } = await import(proxy.protocol === 'https:' ? 'node:https' : 'node:http');
  const headers: Record<string, string> = { host: target };
  if (proxy.username || proxy.password) headers['proxy-authorization'] = `Basic ${Buffer.from(`${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`).toString('base64')}`;
  return new Promise((resolve) => {
    const req = request({ host: proxy.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(proxy.port || (proxy.protocol === 'https:' ? 443 : 80)), method: 'CONNECT', path: target, headers, timeout: timeoutMs, agent: false });
    req.once('connect', (res: IncomingMessage, socket: Socket) => {
      socket.destroy();
      resolve(res.statusCode === 200 ? undefined : proxyRefusal(proxy, target, res.statusCode ?? 0, res.statusMessage));
    });
    // Proxies that answer CONNECT with a body-less refusal may do so as a plain response.
    req.once('response', (res: IncomingMessage) => {
      res.destroy();
      resolve(proxyRefusal(proxy, target, res.statusCode ?? 0, res.statusMessage));
    });
    req.once('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.once('error', (error: Error) => resolve(proxyUnreachable(proxy, target, error)));
    req.end();
  });
}

/**
 * The AWS SDK's `requestHandler` on `route`: the handler options given (timeouts…) with both
 * agents the route's, the https one trusting `ca` (an endpoint's caFile). Every request of the
 * client then goes through the route, STS's included when a credential provider builds its
 * client from this one (the SDK hands a provider the caller's handler as `parentClientConfig`).
 * Undefined when the route is not active, or when `given` is a handler instance or provider,
 * or holds an agent instance: those bring their own connections.
 */
export async function awsHandlerOnRoute<T>(given: T, route: ProxyRoute, ca?: Buffer): Promise<T | undefined> {
  if (!route.active) return undefined;
  if (typeof given === 'function' || (given !== undefined && typeof (given as { handle?: unknown }).handle === 'function')) return undefined;
  const options = (given ?? {}) as Record<string, unknown>;
  const hasAgent = (a: unknown): boolean => typeof (a as { destroy?: unknown } | undefined)?.destroy === 'function';
  if (hasAgent(options['httpsAgent']) || hasAgent(options['httpAgent'])) return undefined;
  const [httpsAgent, httpAgent] = await Promise.all([route.agent(true, ca), route.agent(false)]);
  return { ...options, httpsAgent, httpAgent } as T;
}

/** gaxios's adapter hook (google-gax's gaxios; gaxios 6 under @google-cloud/storage calls it alike). */
type GaxiosAdapter = NonNullable<googleAuthLibrary.gaxios.GaxiosOptions['adapter']>;

/**
 * Wraps a gaxios adapter (or none) so that every request goes through `route`'s agent for its
 * URL: to the endpoint (`origin`) with its `caFile` roots, anywhere else (Google's token
 * service, STS) with the default roots. As vertex-transport's `trustingAdapter`, the adapter has the last
 * word on the agent, over gax's own and over the one gaxios would pick from HTTPS_PROXY with
 * its own NO_PROXY rules. A refused tunnel fails the request with the route's error, which the
 * HTTP stack under gaxios would otherwise reduce to its message.
 */
export function gaxiosAdapterOnRoute(inner: GaxiosAdapter | undefined, route: ProxyRoute, origin: string | undefined, ca: Buffer | undefined): GaxiosAdapter {
  return async (options, defaultAdapter) => {
    const url = options.url instanceof URL ? options.url : new URL(String(options.url));
    const agent = await route.agent(url.protocol === 'https:', url.origin === origin ? ca : undefined);
    const next = agent ? { ...options, agent } : options;
    return withProxyFailures(() => (inner ? inner(next, defaultAdapter) : defaultAdapter(next)));
  };
}
