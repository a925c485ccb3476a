// Prometheus metrics (prom-client), shared by `bgrm serve` and workers with --metrics-port: frames
// processed and failed, per-stage and end-to-end latency, frames in flight, dead letters, stale
// skips, model and ONNX Runtime info, per-partition consumer lag, HTTP requests.
import * as client from 'prom-client';
import type { StageTimings } from './native';
import { peakRssBytes } from './rss';

const STAGES: (keyof StageTimings)[] = ['decodeMs', 'resizeMs', 'queueMs', 'inferMs', 'matteMs', 'encodeMs', 'totalMs'];
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export class Metrics {
  readonly registry = new client.Registry();
  readonly processed: client.Counter<'source'>;
  readonly failed: client.Counter<'source' | 'reason'>;
  readonly deadLettered: client.Counter<'topic'>;
  readonly skipped: client.Counter<'source'>;
  readonly stage: client.Histogram<'stage'>;
  readonly endToEnd: client.Histogram<'source'>;
  readonly inFlight: client.Gauge<'source'>;
  readonly lag: client.Gauge<'worker' | 'topic' | 'partition'>;
  readonly modelInfo: client.Gauge<'model' | 'onnxruntime' | 'device'>;
  readonly httpRequests: client.Counter<'route' | 'status'>;
  readonly commitInterval: client.Gauge;
  readonly peakRss: client.Gauge;

  constructor(defaultLabels: Record<string, string> = {}) {
    this.registry.setDefaultLabels(defaultLabels);
    client.collectDefaultMetrics({ register: this.registry, prefix: 'bgrm_' });
    const registers = [this.registry];
    this.processed = new client.Counter({ name: 'bgrm_frames_processed_total', help: 'Frames processed successfully', labelNames: ['source'], registers });
    this.failed = new client.Counter({ name: 'bgrm_frames_failed_total', help: 'Frames that could not be processed, by error code', labelNames: ['source', 'reason'], registers });
    this.deadLettered = new client.Counter({ name: 'bgrm_frames_dead_lettered_total', help: 'Frames sent to a dead-letter topic', labelNames: ['topic'], registers });
    this.skipped = new client.Counter({ name: 'bgrm_frames_skipped_stale_total', help: 'Frames skipped because they were older than --max-lag-ms', labelNames: ['source'], registers });
    this.stage = new client.Histogram({ name: 'bgrm_stage_seconds', help: 'Time per frame in each native stage', labelNames: ['stage'], buckets: LATENCY_BUCKETS, registers });
    this.endToEnd = new client.Histogram({
      name: 'bgrm_end_to_end_seconds',
      help: 'Capture timestamp (or request arrival) to output durable (or response sent)',
      labelNames: ['source'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.inFlight = new client.Gauge({ name: 'bgrm_frames_in_flight', help: 'Frames inside the native core now', labelNames: ['source'], registers });
    this.lag = new client.Gauge({ name: 'bgrm_consumer_lag', help: 'Messages not yet processed, per input partition', labelNames: ['worker', 'topic', 'partition'], registers });
    this.modelInfo = new client.Gauge({ name: 'bgrm_model_info', help: 'The model loaded, and the ONNX Runtime version (value 1)', labelNames: ['model', 'onnxruntime', 'device'], registers });
    this.commitInterval = new client.Gauge({
      name: 'bgrm_transaction_commit_interval_seconds',
      help: 'How long an exactly-once output transaction stays open now (short while the worker keeps up, longer while it works through a backlog)',
      registers,
    });
    this.peakRss = new client.Gauge({
      name: 'bgrm_process_peak_resident_memory_bytes',
      help: 'The most resident memory this process has held at once since it started',
      registers,
      collect() {
        this.set(peakRssBytes());
      },
    });
    this.httpRequests = new client.Counter({ name: 'bgrm_http_requests_total', help: 'HTTP requests by route and status', labelNames: ['route', 'status'], registers });
  }

  /** A frame processed: its stage timings and, where known, its end-to-end latency in ms. */
  observe(source: string, timings: StageTimings, endToEndMs?: number): void {
    this.processed.inc({ source });
    for (const s of STAGES) this.stage.observe({ stage: s.replace(/Ms$/, '') }, timings[s] / 1000);
    if (endToEndMs !== undefined) this.endToEnd.observe({ source }, Math.max(0, endToEndMs) / 1000);
  }

  fail(source: string, reason: string): void {
    this.failed.inc({ source, reason });
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
