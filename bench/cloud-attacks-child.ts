/**
 * The cloud service for `cloud-attacks.ts`, alone in its process so that its memory and its
 * event loop are its own: it serves the models folder of argv[2] with the options of argv[3]
 * (JSON), tells the parent its port, and reports its event-loop delay and CPU time when asked.
 * With argv[4] `floor` it is instead the physical reference: a minimal node:http service that
 * answers `/ping` and discards every other body unread, with no limits and no models.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { pino } from 'pino';
import { startCloudService, type CloudServiceOptions } from '../cloud/server.js';

const [dir, json, mode] = process.argv.slice(2);

async function startFloor(): Promise<number> {
  const server = createServer((req, res) => {
    if (req.url === '/ping') {
      res.end('ok');
      return;
    }
    req.resume();
    req.on('end', () => res.writeHead(400).end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

const options = JSON.parse(json ?? '{}') as Partial<CloudServiceOptions>;
const port = mode === 'floor' ? await startFloor() : (await startCloudService({ models: dir ?? '.', port: 0, host: '127.0.0.1', logger: pino({ level: 'silent' }), ...options })).port;
process.send?.({ port });
// The service's own event-loop delay, apart from the machine's and the prober's: reset on each
// 'reset', reported (ms) on each 'report'.
const delay = monitorEventLoopDelay({ resolution: 10 });
delay.enable();
let cpu = process.cpuUsage();
process.on('message', (m: string) => {
  if (m === 'reset') {
    delay.reset();
    cpu = process.cpuUsage();
    return;
  }
  const used = process.cpuUsage(cpu);
  process.send?.({ p50: delay.percentile(50) / 1e6, p99: delay.percentile(99) / 1e6, max: delay.max / 1e6, cpuMs: (used.user + used.system) / 1000 });
});
// The bench is over: no drain, whatever the attacks left open.
process.on('disconnect', () => process.exit(0));
