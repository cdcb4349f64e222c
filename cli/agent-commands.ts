/**
 * `tandem edge run --config edge.yaml` (the edge agent as a service) and `tandem demo`
 * (the whole system on one machine).
 */
import type { Command } from 'commander';
import { pino } from 'pino';
import { TandemError } from '../src/errors/index.js';
import { intAtLeast } from './options.js';

const positiveInt = (name: string): ((value: string) => number) => intAtLeast(name, 1);

/** Resolves with the first of the signals; a second one exits at once. */
function untilSignal(signals: readonly NodeJS.Signals[]): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      for (const s of signals) process.removeListener(s, onSignal);
      for (const s of signals) process.once(s, () => process.exit(130));
      resolve(signal);
    };
    for (const s of signals) process.on(s, onSignal);
  });
}

export function registerAgentCommands(program: Command): void {
  const edge = program.command('edge').description('the edge agent');
  edge
    .command('run')
    .description('run the edge agent: MQTT / Greengrass IPC / HTTP fronts over the runtime, residency gate and outbox')
    .requiredOption('--config <file>', 'edge.yaml (every key: docs/reference/edge-yaml.md)')
    .action(async (opts: { config: string }) => {
      const { loadEdgeConfig } = await import('../edge/config.js');
      const { createServiceFromConfig } = await import('../edge/service-factory.js');
      const { EdgeAgent } = await import('../edge/edge-agent.js');
      const { config, nucleus, easSigning } = await loadEdgeConfig(opts.config);
      const logger = pino({ level: config.log.level, base: { service: 'tandem-edge' } });
      const { service } = await createServiceFromConfig(config, { logger, ...(easSigning ? { providerOverrides: { easSigning } } : {}) });
      const agent = new EdgeAgent({ config, service, logger, defaultMetrics: true, nucleus });
      try {
        await agent.start();
      } catch (error) {
        await agent.stop();
        throw error;
      }
      const signal = await untilSignal(['SIGTERM', 'SIGINT']);
      logger.info({ signal }, 'shutting down');
      const report = await agent.stop();
      if (!report.drained || !report.flushed) {
        throw new TandemError('EDGE_STOP_INCOMPLETE', `stopped with ${report.drained ? '' : 'requests still running and '}${report.flushed ? '' : 'results left in the outbox (replayed at the next start)'}`.replace(/ and $/, ''), { details: { ...report } });
      }
    });

  program
    .command('demo')
    .description('the whole system on one machine: MQTT broker, emulated SageMaker/Vertex/PAI-EAS behind a changing network, the agent with a residency policy, PP-OCRv4 text detection')
    .option('--json', 'print the summary as JSON on the last line')
    .option('--per-phase <n>', 'requests per network phase (4 phases)', positiveInt('--per-phase'), 12)
    .option('--keep', 'keep the working folder (stores, outbox, audit log) and print its path')
    .action(async (opts: { json?: boolean; perPhase: number; keep?: boolean }) => {
      const { runDemo } = await import('../demo/demo.js');
      const result = await runDemo({ perPhase: opts.perPhase, keep: opts.keep === true, print: (line) => process.stdout.write(`${line}\n`) });
      if (opts.keep) process.stdout.write(`working folder: ${result.workdir}\n`);
      const s = result.summary;
      if (opts.json) process.stdout.write(`${JSON.stringify({ requests: s.requests, completed: s.completed, lost: s.lost, plans: s.plans, stores: s.stores, planKinds: s.planKinds, fallbacks: s.fallbacks, residencyViolations: s.residencyViolations, durationMs: s.durationMs })}\n`);
      if (s.lost > 0 || s.residencyViolations > 0) {
        throw new TandemError('DEMO_FAILED', `${s.lost} requests lost, ${s.residencyViolations} results in a store their class forbids`, { details: { ...s } });
      }
    });
}
