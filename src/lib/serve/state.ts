// What the dashboard shows, wired: the Kafka feed (kafka-feed.ts) fills the model (dashboard.ts);
// every second a point of the series is taken and the snapshot goes to the pages listening
// (Server-Sent Events, at most 32); /v1/preview answers a camera's latest output; worker reports
// become gauges for /metrics.
import type * as http from 'node:http';
import * as client from 'prom-client';
import type { Metrics } from '../metrics';
import { DashboardModel } from './dashboard';
import { sendJson } from './http';
import { KafkaFeed, type StateOptions } from './kafka-feed';

const MAX_LISTENERS = 32;

export class PipelineState {
  private readonly model: DashboardModel;
  private readonly feed?: KafkaFeed;
  private readonly clients = new Set<http.ServerResponse>();
  private tick?: NodeJS.Timeout;
  private lastHttp = 0;
  private readonly workerProcessed: client.Gauge<'worker'>;
  private readonly workerFps: client.Gauge<'worker'>;
  /** HTTP requests in the core and waiting, from the server. */
  load: () => { inFlight: number; queued: number } = () => ({ inFlight: 0, queued: 0 });

  constructor(
    private readonly opts: StateOptions,
    private readonly metrics: Metrics,
  ) {
    const watching = !!opts.brokers && !!(opts.statusTopic || opts.outputTopic);
    if (watching) this.feed = new KafkaFeed(opts, { onStatus: (m) => this.model.onStatus(m), onOutput: (m) => this.model.onOutput(m) });
    this.model = new DashboardModel(this.feed);
    const registers = [metrics.registry];
    this.workerProcessed = new client.Gauge({ name: 'bgrm_worker_frames_processed', help: 'Frames a worker reports as processed since it started', labelNames: ['worker'], registers });
    this.workerFps = new client.Gauge({ name: 'bgrm_worker_frames_per_second', help: 'A worker\'s reported throughput', labelNames: ['worker'], registers });
  }

  async start(): Promise<void> {
    this.tick = setInterval(() => void this.sample(), 1000);
    this.tick.unref();
    await this.feed?.start();
  }

  private async sample(): Promise<void> {
    const total = (await this.metrics.processed.get()).values.find((v) => v.labels.source === 'http')?.value ?? 0;
    this.model.sample(Math.max(0, total - this.lastHttp));
    this.lastHttp = total;
    if (this.clients.size > 0) {
      const data = `data: ${JSON.stringify(this.snapshot())}\n\n`;
      for (const res of this.clients) res.write(data);
    }
  }

  /** Copies worker reports into gauges for /metrics (lag per partition, throughput). */
  updateGauges(): void {
    this.metrics.lag.reset();
    this.workerProcessed.reset();
    this.workerFps.reset();
    for (const w of this.model.liveWorkers()) {
      for (const [partition, lag] of Object.entries(w.lag)) this.metrics.lag.set({ worker: w.workerId, topic: w.topic, partition }, lag);
      this.workerProcessed.set({ worker: w.workerId }, w.processed);
      this.workerFps.set({ worker: w.workerId }, w.fps);
    }
  }

  snapshot(): object {
    const o = this.opts;
    const kafka = this.feed
      ? { brokers: o.brokers, topic: o.topic, outputTopic: o.outputTopic, statusTopic: o.statusTopic, connected: this.feed.connected, error: this.feed.error, waitingFor: this.feed.waitingFor }
      : null;
    return this.model.snapshot(this.load(), kafka);
  }

  /** GET /v1/preview/CAMERA[?part=frame|mask]: the latest output of a camera (and, for a mask, its input frame). */
  preview(res: http.ServerResponse, camera: string): void {
    const shown = this.model.cameras.get(camera)?.shown;
    const part = new URL(res.req.url ?? '/', 'http://localhost').searchParams.get('part');
    const body = part === 'frame' ? shown?.frame : shown?.image;
    if (!shown || !body) return sendJson(res, 404, { error: { code: 'ERR_NOT_FOUND', message: `no processed frame of camera '${camera}' yet` } });
    res.writeHead(200, {
      'Content-Type': part === 'frame' ? 'image/jpeg' : 'image/png',
      'Content-Length': body.length,
      'Cache-Control': 'no-store',
      'X-Frame-Number': String(shown.frameNumber),
      'X-Content-Type-Options': 'nosniff',
    });
    res.end(body);
  }

  /** GET /v1/events: the snapshot every second as Server-Sent Events (at most 32 listeners). */
  stream(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (this.clients.size >= MAX_LISTENERS) {
      return sendJson(res, 503, { error: { code: 'ERR_BUSY', message: 'too many dashboards are listening; retry later' } }, { 'Retry-After': '5' });
    }
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store', Connection: 'keep-alive' });
    res.write(`data: ${JSON.stringify(this.snapshot())}\n\n`);
    this.clients.add(res);
    req.on('close', () => this.clients.delete(res));
  }

  async close(): Promise<void> {
    if (this.tick) clearInterval(this.tick);
    for (const res of this.clients) res.end();
    this.clients.clear();
    await this.feed?.close();
  }
}
