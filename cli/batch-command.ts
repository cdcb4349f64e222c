/**
 * `tandem batch --config batch.yaml`: every input under a source prefix through the runtime and
 * planner, each result to the store the residency policy picks; resumable from its checkpoint.
 * A progress bar on a terminal; with `--json`, one JSON line per input on stderr and the JSON
 * summary as the last line on stdout.
 *
 * `tandem emulators start`: the loopback S3, GCS and OSS emulators the batch example runs on.
 */
import type { Command } from 'commander';
import { pino } from 'pino';
import { TandemError } from '../src/errors/index.js';
import { easSigningFromEnv } from '../src/providers/index.js';
import { intAtLeast } from './options.js';

interface BatchCliOptions {
  config: string;
  json?: boolean;
  fresh?: boolean;
  logLevel: string;
}

/** The emulators' example credentials (loopback only; docs/guide/batch.md uses them). */
export const EXAMPLE_CREDENTIALS = {
  s3: { accessKeyId: 'AKIDTANDEMEXAMPLE', secretAccessKey: 'tandem-example-secret' },
  oss: { accessKeyId: 'LTAITANDEMEXAMPLE', accessKeySecret: 'tandem-example-oss-secret' },
  gcsToken: 'tandem-example-gcs-token',
};

interface EmulatorsCliOptions {
  s3Port: number;
  s3Region: string;
  s3Buckets: string;
  gcsPort: number;
  gcsBucket: string;
  ossPort: number;
  ossBucket: string;
  seed: number;
  seedPrefix: string;
  json?: boolean;
}

export function registerBatchCommand(program: Command): void {
  const port = intAtLeast('port', 0);
  program
    .command('emulators')
    .description('loopback object-store emulators for the batch example and the demo')
    .command('start')
    .description('start S3 (SigV4 verified), GCS and OSS (V1 signatures verified) emulators on 127.0.0.1 until Ctrl-C')
    .option('--s3-port <port>', 'S3 port', port, 9000)
    .option('--s3-region <region>', 'the region S3 signatures must be scoped to', 'us-east-1')
    .option('--s3-buckets <names>', 'comma-separated S3 buckets', 'images')
    .option('--gcs-port <port>', 'GCS port', port, 9002)
    .option('--gcs-bucket <name>', 'GCS bucket', 'results-eu')
    .option('--oss-port <port>', 'OSS port', port, 9001)
    .option('--oss-bucket <name>', 'OSS bucket', 'results-sh')
    .option('--seed <n>', 'render this many text images into the first S3 bucket', intAtLeast('--seed', 0), 0)
    .option('--seed-prefix <prefix>', 'key prefix of the seeded images', 'incoming/')
    .option('--json', 'print the endpoints and credentials as one JSON line')
    .action(async (opts: EmulatorsCliOptions) => {
      const { startEmulators } = await import('../demo/emulators/index.js');
      const buckets = opts.s3Buckets.split(',').map((b) => b.trim()).filter((b) => b !== '');
      const emulators = await startEmulators({
        s3: { port: opts.s3Port, region: opts.s3Region, buckets, credentials: EXAMPLE_CREDENTIALS.s3 },
        gcs: { port: opts.gcsPort, bucket: opts.gcsBucket },
        oss: { port: opts.ossPort, bucket: opts.ossBucket, credentials: EXAMPLE_CREDENTIALS.oss },
      });
      try {
        if (opts.seed > 0 && buckets[0] !== undefined) await seedImages(emulators.s3!.url, opts.s3Region, buckets[0], opts.seedPrefix, opts.seed);
        const info = {
          s3: { url: emulators.s3!.url, region: opts.s3Region, buckets, ...EXAMPLE_CREDENTIALS.s3, seeded: opts.seed },
          gcs: { url: emulators.gcs!.url, bucket: opts.gcsBucket },
          oss: { url: emulators.oss!.url, bucket: opts.ossBucket, ...EXAMPLE_CREDENTIALS.oss },
        };
        if (opts.json) process.stdout.write(`${JSON.stringify(info)}\n`);
        else {
          process.stdout.write(`S3  ${info.s3.url} (region ${opts.s3Region}, buckets ${buckets.join(', ')}${opts.seed > 0 ? `; ${opts.seed} images under ${buckets[0]}/${opts.seedPrefix}` : ''})\n`);
          process.stdout.write(`    AWS_ACCESS_KEY_ID=${EXAMPLE_CREDENTIALS.s3.accessKeyId} AWS_SECRET_ACCESS_KEY=${EXAMPLE_CREDENTIALS.s3.secretAccessKey}\n`);
          process.stdout.write(`GCS ${info.gcs.url} (bucket ${opts.gcsBucket})\n`);
          process.stdout.write(`OSS ${info.oss.url} (bucket ${opts.ossBucket}, path-style)\n`);
          process.stdout.write(`    ALIBABA_CLOUD_ACCESS_KEY_ID=${EXAMPLE_CREDENTIALS.oss.accessKeyId} ALIBABA_CLOUD_ACCESS_KEY_SECRET=${EXAMPLE_CREDENTIALS.oss.accessKeySecret}\n`);
          process.stdout.write('Ctrl-C stops them (GCS and OSS keep objects in memory only).\n');
        }
        await new Promise<void>((resolve) => {
          process.once('SIGINT', () => resolve());
          process.once('SIGTERM', () => resolve());
        });
        process.stdout.write(`objects held: GCS ${emulators.gcs!.objects.size}, OSS ${emulators.oss!.objects.size}\n`);
      } finally {
        await emulators.stop();
      }
    });

  program
    .command('batch')
    .description('process every input under an S3, GCS or OSS prefix (or a local folder) through the runtime and planner; results go to the stores the residency policy picks; resumable')
    .requiredOption('--config <file>', 'batch.yaml (every key: docs/reference/batch-yaml.md)')
    .option('--json', 'one JSON line per input on stderr, the JSON summary as the last line on stdout')
    .option('--fresh', 'discard the checkpoint and start over')
    .option('--log-level <level>', 'agent log level on stderr', 'warn')
    .action(async (opts: BatchCliOptions) => {
      const { loadBatchConfig } = await import('../edge/batch/config.js');
      const { runBatch } = await import('../edge/batch/runner.js');
      const loaded = await loadBatchConfig(opts.config);
      const logger = pino({ level: opts.logLevel, base: { service: 'tandem-batch' } }, pino.destination(2));
      const json = opts.json === true;
      const tty = !json && process.stderr.isTTY === true;
      const bar = tty ? await progressBar() : undefined;
      // The first Ctrl-C stops listing and lets the inputs in flight finish; a second one exits.
      const stop = new AbortController();
      const onSignal = (): void => {
        process.once('SIGINT', () => process.exit(130));
        stop.abort();
      };
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      const easSigning = easSigningFromEnv(process.env);
      try {
        const summary = await runBatch(loaded, {
          logger,
          fresh: opts.fresh === true,
          signal: stop.signal,
          ...(easSigning ? { providerOverrides: { easSigning } } : {}),
          onInput: (o) => {
            if (json) process.stderr.write(`${JSON.stringify(o)}\n`);
            else if (!tty && o.outcome !== 'skipped') process.stderr.write(o.outcome === 'done' ? `done ${o.key} → ${o.store} (${o.plan}, ${o.ms} ms)\n` : `failed ${o.key}: ${o.code}\n`);
          },
          onProgress: (p) => bar?.update(p),
        });
        bar?.stop();
        if (json) process.stdout.write(`${JSON.stringify(summary)}\n`);
        else {
          process.stdout.write(`${summary.source}: ${summary.listed} listed, ${summary.processed} processed, ${summary.skipped} already done, ${summary.failed} failed${summary.interrupted ? ' (interrupted: run again to resume)' : ''}, ${(summary.durationMs / 1000).toFixed(1)} s\n`);
          for (const [store, n] of Object.entries(summary.stores)) process.stdout.write(`  ${store}: ${n}\n`);
          for (const f of summary.failures) process.stdout.write(`  failed ${f.key}: ${f.code}\n`);
        }
        if (summary.failed > 0) throw new TandemError('BATCH_INCOMPLETE', `${summary.failed} input(s) could not be processed (listed in the checkpoint ${loaded.config.checkpoint})`);
      } finally {
        bar?.stop();
        process.removeListener('SIGINT', onSignal);
        process.removeListener('SIGTERM', onSignal);
      }
    });
}

/** A cli-progress bar on stderr whose total grows as the listing goes on. */
async function progressBar(): Promise<{ update: (p: { listed: number; processed: number; skipped: number; failed: number }) => void; stop: () => void }> {
  const { SingleBar, Presets } = await import('cli-progress');
  const bar = new SingleBar(
    { format: 'batch |{bar}| {value}/{total} settled | {processed} processed, {skipped} already done, {failed} failed | {duration_formatted}', hideCursor: true, stream: process.stderr },
    Presets.shades_classic,
  );
  bar.start(0, 0, { processed: 0, skipped: 0, failed: 0 });
  let stopped = false;
  return {
    update: (p) => {
      bar.setTotal(p.listed);
      bar.update(p.processed + p.skipped + p.failed, { processed: p.processed, skipped: p.skipped, failed: p.failed });
    },
    stop: () => {
      if (!stopped) bar.stop();
      stopped = true;
    },
  };
}

/** Uploads `count` rendered text images through the S3 emulator (signed, like any client). */
async function seedImages(url: string, region: string, bucket: string, prefix: string, count: number): Promise<void> {
  const { renderTextImage } = await import('../demo/render.js');
  const { createStore, validatePolicy } = await import('../src/residency/index.js');
  const decl = validatePolicy({ version: 1, classes: {}, stores: { s: { type: 's3', region, bucket, endpoint: url, sse: 'none' } } }).stores['s']!;
  const store = createStore('seed', decl, { s3: { credentials: EXAMPLE_CREDENTIALS.s3 } });
  try {
    for (let i = 0; i < count; i++) await store.put(`${prefix}img-${String(i).padStart(4, '0')}.png`, (await renderTextImage(1000 + i)).png, { contentType: 'image/png' });
  } finally {
    await store.close();
  }
}
