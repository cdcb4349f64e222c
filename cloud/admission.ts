/**
 * What the service admits before any model's limiter sees a request: request-body bytes in
 * memory (the body budget) and connections (the caps). Both are made once per service and
 * reported on its metrics, read when scraped.
 */
import { Gauge } from 'prom-client';
import { ConnectionGuard } from './connections.js';
import { BodyBudget } from './limiter.js';
import type { CloudMetrics } from './metrics.js';
import type { ServiceSettings } from './options.js';

export class Admission {
  readonly budget: BodyBudget;
  readonly connections: ConnectionGuard;

  constructor(settings: ServiceSettings, metrics: CloudMetrics) {
    const budget = new BodyBudget(settings.bodyBudget);
    const connections = new ConnectionGuard({ total: settings.maxConnections, perIp: settings.maxConnectionsPerIp });
    this.budget = budget;
    this.connections = connections;
    const registers = [metrics.registry];
    new Gauge({ name: 'tandem_cloud_body_bytes_in_flight', help: 'Request-body bytes held (admitted and not yet answered)', registers, collect() { this.set(budget.inFlight); } });
    new Gauge({ name: 'tandem_cloud_body_bytes_peak', help: 'Most request-body bytes held at once since start', registers, collect() { this.set(budget.peak); } });
    new Gauge({ name: 'tandem_cloud_body_budget_bytes', help: 'The body budget (bytes)', registers, collect() { this.set(budget.capacity); } });
    new Gauge({ name: 'tandem_cloud_body_budget_refusals', help: 'Bodies refused (429) because the body budget had no room, since start', registers, collect() { this.set(budget.refused); } });
    new Gauge({ name: 'tandem_cloud_connections_open', help: 'Open HTTP connections', registers, collect() { this.set(connections.open); } });
    new Gauge({
      name: 'tandem_cloud_connections_closed',
      help: 'Connections closed by the caps since start: per_ip (over the per-address cap), total (at the overall cap, none idle), evicted (idle, to make room)',
      labelNames: ['reason'],
      registers,
      collect() {
        this.set({ reason: 'per_ip' }, connections.refusedPerIp);
        this.set({ reason: 'total' }, connections.refusedTotal);
        this.set({ reason: 'evicted' }, connections.evicted);
      },
    });
  }
}
