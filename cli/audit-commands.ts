/**
 * `tandem audit verify FILE`: checks an audit log of either format and says what was tampered
 * with (line, record and kind), exiting 1 when anything was. A keyed log is checked with the key
 * source the caller names (`--policy` with its `auditKey`, or `--key-file`), never with one the
 * file names; KMS credentials come from each SDK's default chain.
 */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { z } from 'zod';
import { ValidationError } from '../src/errors/index.js';

interface VerifyOptions {
  json?: boolean;
  policy?: string;
  keyFile?: string;
  checkpoint?: string;
}

const checkpointSchema = z.object({ log: z.string().min(1), seq: z.number().int().positive(), mac: z.string().regex(/^[0-9a-f]{64}$/) });

async function readCheckpoint(file: string): Promise<z.infer<typeof checkpointSchema>> {
  let value: unknown;
  try {
    value = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    throw new ValidationError('CLI_FILE_UNREADABLE', `cannot read the checkpoint ${file}: ${error instanceof Error ? error.message : String(error)}`, { cause: error, details: { file } });
  }
  const parsed = checkpointSchema.safeParse(value);
  if (!parsed.success) throw new ValidationError('CLI_OPTION', `--checkpoint ${file} is not {"log", "seq", "mac"} as a keyed log's checkpoint: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`, { details: { file } });
  return parsed.data;
}

export function registerAuditCommands(program: Command): void {
  const audit = program.command('audit').description('The residency audit log.');
  audit
    .command('verify')
    .argument('<file>', 'audit log (JSON lines)')
    .option('--json', 'print the full report as JSON (the last stdout line)')
    .option('--policy <file>', 'residency policy whose auditKey (and keys) protect a keyed log')
    .option('--key-file <file>', "the device's key file, for a log keyed with the local key")
    .option('--checkpoint <file>', 'a checkpoint {"log","seq","mac"} kept elsewhere: the log must reach it (detects a cut tail)')
    .description('Check an audit log: names every forged, edited, deleted, reordered or replayed record and a cut tail; exits 1 if any.')
    .action(async (file: string, options: VerifyOptions) => {
      const { AuditTamperError, KeyRing, LocalKeyFile, auditReport, loadPolicy } = await import('../src/residency/index.js');
      const local = options.keyFile === undefined ? undefined : await LocalKeyFile.open(options.keyFile);
      // The CLI hands the process's proxy settings over: KMS may be reachable only through them.
      const { proxyEnvironment } = await import('../src/providers/index.js');
      const ring = options.policy === undefined ? undefined : KeyRing.forPolicy(await loadPolicy(options.policy), { ...(local === undefined ? {} : { local }), proxyEnv: proxyEnvironment(process.env) });
      const keys = ring ?? local;
      try {
        const checkpoint = options.checkpoint === undefined ? undefined : await readCheckpoint(options.checkpoint);
        const report = await auditReport(file, { ...(keys === undefined ? {} : { keys }), ...(checkpoint === undefined ? {} : { checkpoint }) });
        for (const f of report.findings) process.stdout.write(`${file}:${f.line}: ${f.kind}${f.seq === undefined ? '' : ` (record ${f.seq})`}: ${f.message}\n`);
        for (const w of report.warnings) process.stdout.write(`warning: ${w}\n`);
        const summary = report.intact
          ? `${file}: ${report.records} records, ${report.format} chain intact${report.format === 'keyed' ? (report.closed ? ', closed' : ', not closed') : ''}`
          : `${file}: ${report.findings.length} finding(s) in ${report.records} records: tampered`;
        process.stdout.write(`${summary}\n`);
        const out = {
          ok: report.intact,
          file,
          ...report,
          // What to keep elsewhere to detect a cut tail next time.
          ...(report.format === 'keyed' && report.intact && report.log !== undefined ? { checkpoint: { log: report.log, seq: report.lastSeq, mac: report.last } } : {}),
        };
        process.stdout.write(`${JSON.stringify(options.json === true ? out : { ok: out.ok, file, format: report.format, records: report.records, lastHash: report.last, closed: report.closed, findings: report.findings.length })}\n`);
        const first = report.findings[0];
        if (first !== undefined) throw new AuditTamperError(file, first.line, `${first.kind}: ${first.message}`);
      } finally {
        await ring?.close();
      }
    });
}
