/** Prometheus metrics of the cloud service, on a registry of its own (one per service). */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class CloudMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<'route' | 'model' | 'status'>;
  readonly latency: Histogram<'route' | 'model'>;
  readonly compute: Histogram<'model' | 'cut'>;
  readonly queueDepth: Gauge<'model'>;
  readonly active: Gauge<'model'>;
  readonly rejections: Counter<'model' | 'reason'>;
  readonly bytesIn: Counter<'route'>;
  readonly offloaded: Counter;

  constructor(defaultMetrics = false) {
    const registers = [this.registry];
    const buckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
    this.requests = new Counter({ name: 'tandem_cloud_requests_total', help: 'Requests by route, model and HTTP status', labelNames: ['route', 'model', 'status'], registers });
    this.latency = new Histogram({ name: 'tandem_cloud_request_duration_seconds', help: 'Request latency from first byte to response, by route and model', labelNames: ['route', 'model'], buckets, registers });
    this.compute = new Histogram({ name: 'tandem_cloud_compute_duration_seconds', help: 'onnxruntime run time by model and cut', labelNames: ['model', 'cut'], buckets, registers });
    this.queueDepth = new Gauge({ name: 'tandem_cloud_queue_depth', help: 'Requests waiting for a slot, by model', labelNames: ['model'], registers });
    this.active = new Gauge({ name: 'tandem_cloud_active_requests', help: 'Requests running, by model', labelNames: ['model'], registers });
    this.rejections = new Counter({ name: 'tandem_cloud_rejections_total', help: 'Requests refused before running, by model and reason', labelNames: ['model', 'reason'], registers });
    this.bytesIn = new Counter({ name: 'tandem_cloud_request_bytes_total', help: 'Request body bytes by route', labelNames: ['route'], registers });
    this.offloaded = new Counter({ name: 'tandem_cloud_bodies_offloaded_total', help: 'Request bodies decoded in the JSON thread, off the event loop', registers });
    if (defaultMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'tandem_cloud_' });
  }

  /** Reports `loaded()`, the partitions (whole models and tails) loaded or loading, when scraped. */
  watchPartitions(loaded: () => number): void {
    new Gauge({ name: 'tandem_cloud_partitions_loaded', help: 'Partitions (whole models and tails) loaded or loading', registers: [this.registry], collect() { this.set(loaded()); } });
  }
}
