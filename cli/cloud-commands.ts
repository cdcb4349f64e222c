/**
 * `tandem cloud serve`, `tandem bench codec`, `tandem bench cloud-overhead` and `tandem bench cloud-attacks`.
 */
import type { Command } from 'commander';
import { ValidationError } from '../src/errors/index.js';
import { loadBench } from './bench-loader.js';
import { intAtLeast, numberAtLeast } from './options.js';

function writeResult(json: boolean, result: Record<string, unknown>, human: string): void {
  if (json) process.stdout.write(`${JSON.stringify(result)}\n`);
  else process.stdout.write(`${human}\n`);
}

const positiveInt = (name: string): ((value: string) => number) => intAtLeast(name, 1);
const nonNegativeInt = (name: string): ((value: string) => number) => intAtLeast(name, 0);

/** Attaches `codec` and `cloud-overhead` to a shared `bench` command. */
export function registerCloudBenchCommands(bench: Command): void {
  bench.command('codec')
    .description('encode+decode throughput of the tensor wire format for a 4 MB float32 tensor')
    .option('--json', 'print the result as JSON on the last line')
    .option('--iterations <n>', 'timed iterations', positiveInt('--iterations'), 50)
    .action(async (opts: { json?: boolean; iterations: number }) => {
      const { runCodecBench } = await loadBench('codec', () => import('../bench/codec.js'));
      const r = runCodecBench({ iterations: opts.iterations });
      writeResult(opts.json === true, { ...r }, `codec: ${r.tensorBytes} B float32, encode ${r.encodeMs.toFixed(3)} ms, decode ${r.decodeMs.toFixed(3)} ms (CRC-32: ${r.crc32}), ${r.encodeDecodeGBps.toFixed(2)} GB/s encode+decode`);
    });
  bench.command('cloud-overhead')
    .description('cloud service time over a bare onnxruntime-node run of the same partition (batch 1), and the client round trip on loopback')
    .option('--json', 'print the result as JSON on the last line')
    .option('--iterations <n>', 'timed pairs (bare run and request)', positiveInt('--iterations'), 200)
    .option('--warmup <n>', 'warm-up pairs (bare run and request) before the timed ones (default: 500, the service\'s steady state)', nonNegativeInt('--warmup'))
    .option('--cut <id>', 'the cut of the reference MobileNetV2 whose tail runs (default: c16, nearest 25 % of the FLOPs)')
    .option('--intra-op-threads <n>', 'onnxruntime intra-op threads, for the bare run and the service alike', positiveInt('--intra-op-threads'))
    .option('--no-spinning', 'stop idle onnxruntime threads spin-waiting, on both sides')
    .option('--workers <n>', 'run the partition in this many service worker threads (bare runs timed in the worker; default 0: on the event loop)', nonNegativeInt('--workers'), 0)
    .option('--pace-mbps <n>', 'send each request in 64 KiB writes at this many Mbit/s, as a link brings it (default: at once)', numberAtLeast('--pace-mbps', 1))
    .action(async (opts: { json?: boolean; iterations: number; warmup?: number; cut?: string; intraOpThreads?: number; spinning: boolean; workers: number; paceMbps?: number }) => {
      const { runCloudOverheadBench, defaultOverheadSubject } = await loadBench('cloud-overhead', () => import('../bench/cloud-overhead.js'));
      const r = await runCloudOverheadBench(await defaultOverheadSubject(opts.cut), {
        iterations: opts.iterations,
        ...(opts.warmup !== undefined ? { warmup: opts.warmup } : {}),
        ...(opts.intraOpThreads !== undefined ? { intraOpNumThreads: opts.intraOpThreads } : {}),
        ...(opts.spinning ? {} : { spinning: false }),
        workers: opts.workers,
        ...(opts.paceMbps !== undefined ? { paceMbps: opts.paceMbps } : {}),
      });
      writeResult(opts.json === true, { ...r }, `cloud overhead (${r.subject}${r.workers > 0 ? `, ${r.workers} worker thread(s)` : ''}${r.paceMbps !== null ? `, requests at ${r.paceMbps} Mbit/s` : ''}): bare ${r.bareMs.toFixed(2)} ms, service ${r.serviceMs.toFixed(2)} ms (+${r.overheadMs.toFixed(2)} ms), ratio ${r.overheadRatio.toFixed(3)}; after the body's last byte ${r.afterBodyMs.toFixed(2)} ms (ratio ${r.afterBodyRatio.toFixed(3)}); client round trip ${r.roundTripMs.toFixed(2)} ms (ratio ${r.roundTripRatio.toFixed(3)}), of which node:http alone ${r.transportFloorMs.toFixed(2)} ms; the least a node:http service can do with this request: ${r.serviceFloorMs.toFixed(2)} ms (+${r.serviceFloorOverheadMs.toFixed(2)} ms, ratio ${r.serviceFloorRatio.toFixed(3)}); own overhead over that floor: ratio ${r.ownOverheadRatio.toFixed(3)} (goal ≤ 1.03)`);
    });
  bench.command('cloud-attacks')
    .description('/ping latency (p50/p99/max) and peak RSS of the cloud service, in a child process, through each attack of issue #31: half-sent bodies, trickling connections, large JSON')
    .option('--json', 'print the result as JSON on the last line')
    .option('--duration-ms <ms>', 'how long each attack lasts', positiveInt('--duration-ms'), 5000)
    .option('--connections <n>', 'trickling connections', positiveInt('--connections'), 5000)
    .option('--attacks <names>', 'comma-separated attacks to run (default: all)')
    .option('--floor', 'also run each attack against a minimal node:http service: the machine\'s own limit')
    .option('--attacker-nice <n>', 'nice value for the thread making the attacks (Linux; 0: same priority as the service): real attackers spend their own CPU', intAtLeast('--attacker-nice', 0), 10)
    .action(async (opts: { json?: boolean; durationMs: number; connections: number; attacks?: string; floor?: boolean; attackerNice: number }) => {
      const { runCloudAttacksBench, formatCloudAttacks, ATTACKS } = await loadBench('cloud-attacks', () => import('../bench/cloud-attacks.js'));
      const attacks = opts.attacks?.split(',').map((a) => a.trim());
      const unknown = attacks?.filter((a) => !(ATTACKS as readonly string[]).includes(a));
      if (unknown && unknown.length > 0) throw new ValidationError('CLI_ARGUMENT', `--attacks: unknown ${unknown.join(', ')} (known: ${ATTACKS.join(', ')})`);
      const r = await runCloudAttacksBench({ durationMs: opts.durationMs, connections: opts.connections, floor: opts.floor === true, attackerNice: Math.min(19, opts.attackerNice), ...(attacks ? { attacks: attacks as typeof ATTACKS[number][] } : {}) });
      writeResult(opts.json === true, { ...r }, formatCloudAttacks(r));
    });
}

interface ServeOptions {
  port?: number;
  grpcPort?: number;
  host: string;
  models?: string;
  tlsKey?: string;
  tlsCert?: string;
  maxConcurrent: number;
  maxQueue: number;
  timeoutMs: number;
  logLevel: string;
  intraOpThreads?: number;
  spinning: boolean;
  preload: boolean;
  workers?: number;
  maxPartitions?: number;
  maxBodyBytes?: number;
  maxJsonBytes?: number;
  inlineJsonBytes?: number;
  bodyBudgetBytes?: number;
  bodyIdleTimeoutMs?: number;
  maxConnections?: number;
  maxConnectionsPerIp?: number;
  headersTimeoutMs?: number;
  keepAliveTimeoutMs?: number;
}

function portOption(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0 || n > 65535) throw new ValidationError('CLI_ARGUMENT', `${name} must be 0-65535, got "${v}"`);
    return n;
  };
}

async function serve(opts: ServeOptions): Promise<void> {
  const [{ readFile }, { pino }, { startCloudService }, { defaultTailExtractor }, { resolveModelSource }, { cloudOptionsFromEnv }] = await Promise.all([
    import('node:fs/promises'), import('pino'), import('../cloud/server.js'), import('../cloud/tails.js'), import('../cloud/sources.js'), import('../cloud/config.js'),
  ]);
  // Flags first; what they leave out comes from the container's environment.
  // ServeOptions names each limit as GivenOptions does: the flags pass through.
  const { modelSource, ...fromEnv } = cloudOptionsFromEnv(process.env, opts);
  const { threadingSessionOptions } = await import('../cloud/models.js');
  if ((opts.tlsKey === undefined) !== (opts.tlsCert === undefined)) throw new ValidationError('CLI_ARGUMENT', '--tls-key and --tls-cert go together');
  const tls = opts.tlsKey && opts.tlsCert ? { key: await readFile(opts.tlsKey), cert: await readFile(opts.tlsCert) } : undefined;
  const logger = pino({ name: 'tandem-cloud', level: opts.logLevel });
  // Vertex AI tells a custom container where its artifacts are; SageMaker mounts them.
  const source = await resolveModelSource(modelSource);
  const service = await startCloudService({
    ...fromEnv,
    models: source.dir,
    ...(opts.grpcPort !== undefined ? { grpcPort: opts.grpcPort } : {}),
    host: opts.host,
    ...(tls ? { tls } : {}),
    maxConcurrent: opts.maxConcurrent,
    maxQueue: opts.maxQueue,
    requestTimeoutMs: opts.timeoutMs,
    extractTail: defaultTailExtractor,
    logger,
    processMetrics: true,
    preload: opts.preload,
    sessionOptions: threadingSessionOptions({ ...(opts.intraOpThreads !== undefined ? { intraOpNumThreads: opts.intraOpThreads } : {}), ...(opts.spinning ? {} : { spinning: false }) }),
  });
  process.stdout.write(`tandem cloud service on ${service.url}${service.grpcUrl ? ` (Vertex AI gRPC on ${service.grpcUrl})` : ''} serving ${service.models.names().join(', ') || 'no models'}\n`);
  // SageMaker and Vertex stop containers with SIGTERM; finish in-flight requests first.
  await new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals): void => {
      logger.info({ signal }, 'shutting down');
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
      service.drain().then(() => source.cleanup()).then(resolve, (error: unknown) => {
        logger.error({ err: error }, 'drain failed');
        resolve();
      });
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
}

/** Registers `cloud serve`, and `bench` with the cloud benchmarks unless `bench` exists already. */
export function registerCloudCommands(program: Command): void {
  const cloud = program.command('cloud').description('the Tandem cloud service');
  cloud.command('serve')
    .description('serve model packages (whole or any tail) on the SageMaker, Vertex AI, OIP v2 and Tandem contracts')
    .option('--port <port>', 'listen port (default: SAGEMAKER_BIND_TO_PORT, AIP_HTTP_PORT, or 8080)', portOption('--port'))
    .option('--grpc-port <port>', 'also serve Vertex AI\'s PredictionService (Predict, RawPredict) over gRPC on this port, TLS with --tls-key/--tls-cert (0: a free port; default: off)', portOption('--grpc-port'))
    .option('--host <host>', 'listen address', '0.0.0.0')
    .option('--models <dir>', 'model package directory or gs://bucket/prefix (default: AIP_STORAGE_URI, else /opt/ml/model)')
    .option('--tls-key <file>', 'PEM private key: serve HTTPS')
    .option('--tls-cert <file>', 'PEM certificate chain')
    .option('--max-concurrent <n>', 'runs at once per model', positiveInt('--max-concurrent'), 2)
    .option('--max-queue <n>', 'requests allowed to wait per model before 429', nonNegativeInt('--max-queue'), 16)
    .option('--timeout-ms <ms>', 'default per-request deadline', positiveInt('--timeout-ms'), 60_000)
    .option('--log-level <level>', 'pino log level', 'info')
    .option('--intra-op-threads <n>', 'onnxruntime intra-op threads per session (default: one per physical core)', positiveInt('--intra-op-threads'))
    .option('--no-spinning', 'stop idle onnxruntime threads spin-waiting (for cores shared with other work)')
    .option('--no-preload', 'load each model on its first request instead of before listening (onnxruntime builds a session on the event loop, holding every answer meanwhile)')
    .option('--workers <n>', 'worker threads that run the models, keeping the event loop free during runs (default: TANDEM_WORKERS, else 0: runs on the event loop)', nonNegativeInt('--workers'))
    .option('--max-partitions <n>', 'whole models and tails kept loaded, least recently used evicted beyond (default: TANDEM_MAX_PARTITIONS, else 32)', positiveInt('--max-partitions'))
    .option('--max-body-bytes <n>', 'largest body on non-SageMaker routes (default: TANDEM_MAX_BODY_BYTES, else 64 MiB)', positiveInt('--max-body-bytes'))
    .option('--max-json-bytes <n>', 'largest JSON body (default: TANDEM_MAX_JSON_BYTES, else 8 MiB)', positiveInt('--max-json-bytes'))
    .option('--inline-json-bytes <n>', 'JSON bodies larger than this are parsed in the JSON thread, off the event loop (default: TANDEM_INLINE_JSON_BYTES, else 65536)', positiveInt('--inline-json-bytes'))
    .option('--body-budget-bytes <n>', 'request-body bytes held at once in all; beyond, 429 before reading (default: TANDEM_BODY_BUDGET_BYTES, else 4 x max body, at most 1/4 of memory)', positiveInt('--body-budget-bytes'))
    .option('--body-idle-timeout-ms <ms>', 'a body bringing under 1 KiB in this time is refused with 408 (default: TANDEM_BODY_IDLE_TIMEOUT_MS, else 10000)', positiveInt('--body-idle-timeout-ms'))
    .option('--max-connections <n>', 'open connections in all; at the cap a new one replaces the longest idle (default: TANDEM_MAX_CONNECTIONS, else 1024)', positiveInt('--max-connections'))
    .option('--max-connections-per-ip <n>', 'open connections from one address (default: TANDEM_MAX_CONNECTIONS_PER_IP, else 64)', positiveInt('--max-connections-per-ip'))
    .option('--headers-timeout-ms <ms>', 'time to send the request headers (default: TANDEM_HEADERS_TIMEOUT_MS, else 10000)', positiveInt('--headers-timeout-ms'))
    .option('--keep-alive-timeout-ms <ms>', 'idle kept-alive connections closed after (default: TANDEM_KEEP_ALIVE_TIMEOUT_MS, else 65000)', positiveInt('--keep-alive-timeout-ms'))
    .action((opts: ServeOptions) => serve(opts));

  const existing = program.commands.find((c) => c.name() === 'bench');
  const bench = existing ?? program.command('bench').description('benchmarks');
  registerCloudBenchCommands(bench);
}
