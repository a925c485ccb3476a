// What the dashboard shows: the HTTP API's own throughput, and, when a broker is configured, every
// worker (from the status records they publish), their partitions and lag, and the latest processed
// frame of each camera (read from the output topic with read_committed). Everything is bounded:
// at most 64 workers, 32 cameras, 300 seconds of series.
import type * as http from 'node:http';
import * as Kafka from 'node-rdkafka';
import * as client from 'prom-client';
import { BgrmError } from '../errors';
import { baseConfig, clientConfig, connectClient, ensureTopic } from '../kafka/client';
import { deniedError } from '../kafka/errors';
import { scrub, type KafkaSettings } from '../kafka/settings';
import { decodeFrameMessage, headerMap, incoming, parseOrigin, type IncomingMessage, type KafkaHeaders } from '../kafka/messages';
import { STATUS_KIND, type WorkerStatus } from '../status';
import type { Metrics } from '../metrics';

/** The Kafka pipeline to watch: brokers, frame topic, output topic, status topic. */
export interface StateOptions {
  brokers?: string;
  topic?: string;
  outputTopic?: string;
  statusTopic?: string;
  connectTimeoutMs?: number;
  /** The user's Kafka client settings (--kafka-config, -X, ...). */
  kafkaSettings?: KafkaSettings;
}

interface CameraView {
  id: string;
  frameNumber: number;
  updatedAt: number;
  /** 'rgba/png': the value is the cut-out; 'mask/png': the mask, composited with `frame` in the page. */
  content: string;
  image: Buffer;
  source?: { topic: string; partition: number; offset: number };
  e2eMs?: number;
  worker?: string;
  /** What the preview shows: the latest output that is complete (a cut-out, or a mask with its frame). */
  shown?: { frameNumber: number; image: Buffer; frame?: Buffer };
}

interface Point {
  t: number;
  /** Frames per second: HTTP, and all workers together (as they report). */
  http: number;
  workers: number;
  /** Worst p95 end-to-end latency reported by a worker, ms. */
  p95: number;
  lag: number;
}

const MAX_WORKERS = 64;
const MAX_CAMERAS = 32;
const SERIES = 300;
const WORKER_GONE_MS = 20000;

export class PipelineState {
  private readonly workers = new Map<string, { status: WorkerStatus; receivedAt: number }>();
  private readonly cameras = new Map<string, CameraView>();
  private readonly series: Point[] = [];
  private readonly clients = new Set<http.ServerResponse>();
  private consumer?: Kafka.KafkaConsumer;
  private fetcher?: Kafka.KafkaConsumer;
  private fetching = false;
  private running = false;
  private loop?: Promise<void>;
  private tick?: NodeJS.Timeout;
  private lastHttp = 0;
  private brokerError?: string;
  /** Topics to read that do not exist yet (an output topic before its first worker starts). */
  private waitingFor: string[] = [];
  private subscribed: string[] = [];
  private readonly madeHere = new Set<string>();
  private readonly workerProcessed: client.Gauge<'worker'>;
  private readonly workerFps: client.Gauge<'worker'>;
  /** HTTP requests in the core and waiting, from the server. */
  load: () => { inFlight: number; queued: number } = () => ({ inFlight: 0, queued: 0 });

  constructor(
    private readonly opts: StateOptions,
    private readonly metrics: Metrics,
  ) {
    const registers = [metrics.registry];
    this.workerProcessed = new client.Gauge({ name: 'bgrm_worker_frames_processed', help: 'Frames a worker reports as processed since it started', labelNames: ['worker'], registers });
    this.workerFps = new client.Gauge({ name: 'bgrm_worker_frames_per_second', help: 'A worker\'s reported throughput', labelNames: ['worker'], registers });
  }

  get watching(): boolean {
    return !!this.opts.brokers && !!(this.opts.statusTopic || this.opts.outputTopic);
  }

  async start(): Promise<void> {
    this.tick = setInterval(() => this.sample(), 1000);
    this.tick.unref();
    if (!this.watching) return;
    const conn = { brokers: this.opts.brokers!, clientId: 'bgrm-serve', connectTimeoutMs: this.opts.connectTimeoutMs, settings: this.opts.kafkaSettings };
    const consumer = new Kafka.KafkaConsumer(
      clientConfig(conn, {
        ...baseConfig(conn),
        'group.id': `bgrm-serve-${process.pid}-${Date.now()}`,
        'enable.auto.commit': false,
        'isolation.level': 'read_committed',
        'topic.metadata.refresh.interval.ms': 2000,
        'queued.max.messages.kbytes': 16 * 1024,
      }),
      { 'auto.offset.reset': 'latest' },
    );
    try {
      await connectClient(consumer, conn);
      // The status topic is bgrm's own: made here as a worker would make it, so that the order in
      // which serve and the workers start does not matter.
      if (this.opts.statusTopic) {
        await ensureTopic(conn, this.opts.statusTopic, 1, 'READ and DESCRIBE');
        this.madeHere.add(this.opts.statusTopic); // listed by the broker's metadata a moment later
      }
    } catch (err) {
      // The API keeps working without the broker; the dashboard says why the pipeline view is empty.
      this.brokerError = err instanceof BgrmError ? err.message : `cannot reach Kafka at ${this.opts.brokers}: ${scrub((err as Error).message, conn.settings)}`;
      return;
    }
    consumer.setDefaultConsumeTimeout(500);
    this.consumer = consumer;
    await this.subscribeExisting();
    if (this.opts.topic) {
      const fetcher = new Kafka.KafkaConsumer(clientConfig(conn, { ...baseConfig(conn), 'group.id': `bgrm-serve-fetch-${process.pid}`, 'enable.auto.commit': false }), {});
      await new Promise<void>((resolve) => fetcher.connect({ timeout: 10000 }, (err) => (err ? resolve() : ((this.fetcher = fetcher), resolve()))));
      this.fetcher?.setDefaultConsumeTimeout(5000);
    }
    this.running = true;
    this.loop = this.consumeLoop();
  }

  /**
   * Subscribes to the watched topics that exist; those that do not yet (the output topic before
   * the first worker made it) are listed in the snapshot and looked for again every second.
   */
  private async subscribeExisting(): Promise<void> {
    const consumer = this.consumer;
    if (!consumer) return;
    const wanted = [this.opts.statusTopic, this.opts.outputTopic].filter((t): t is string => !!t);
    const existing = await new Promise<Set<string> | undefined>((resolve) =>
      consumer.getMetadata({ timeout: 5000 }, (err, md) => resolve(err ? undefined : new Set(md.topics.map((t) => t.name)))),
    );
    if (!existing) return; // the broker is away: try again at the next tick
    const exists = (t: string) => existing.has(t) || this.madeHere.has(t);
    const present = wanted.filter(exists);
    this.waitingFor = wanted.filter((t) => !exists(t));
    if (present.join(',') === this.subscribed.join(',')) return;
    if (this.subscribed.length > 0) consumer.unsubscribe();
    if (present.length > 0) consumer.subscribe(present);
    this.subscribed = present;
  }

  private async consumeLoop(): Promise<void> {
    let lookedAt = Date.now();
    while (this.running && this.consumer) {
      if (this.waitingFor.length > 0 && Date.now() - lookedAt >= 1000) {
        lookedAt = Date.now();
        await this.subscribeExisting();
      }
      if (this.subscribed.length === 0) {
        await new Promise((r) => setTimeout(r, 250));
        continue;
      }
      const batch = await new Promise<Kafka.Message[]>((resolve) =>
        this.consumer!.consume(32, (err, msgs) => {
          if (err) {
            if (err.code !== Kafka.CODES.ERRORS.ERR_UNKNOWN_TOPIC_OR_PART) {
              const conn = { brokers: this.opts.brokers!, settings: this.opts.kafkaSettings };
              this.brokerError = deniedError(conn, err, { topic: this.subscribed.join(', '), topicOps: 'READ and DESCRIBE' })?.message ?? scrub(err.message, conn.settings);
            }
            return setTimeout(() => resolve([]), 500);
          }
          this.brokerError = undefined;
          resolve(msgs);
        }),
      );
      for (const m of batch) {
        const message = incoming(m);
        if (m.topic === this.opts.statusTopic) this.onStatus(message);
        else this.onOutput(message);
      }
    }
  }

  private onStatus(m: IncomingMessage): void {
    let status: WorkerStatus;
    try {
      status = JSON.parse(m.value?.toString() ?? '') as WorkerStatus;
    } catch {
      return; // not ours: a status topic is shared with nothing else, but be robust
    }
    if (status?.kind !== STATUS_KIND || typeof status.workerId !== 'string') return;
    if (!this.workers.has(status.workerId) && this.workers.size >= MAX_WORKERS) this.dropOldest(this.workers, (w) => w.receivedAt);
    this.workers.set(status.workerId, { status, receivedAt: Date.now() });
  }

  private onOutput(m: IncomingMessage): void {
    if (!m.value) return;
    let id: string;
    let frameNumber: number;
    try {
      const f = decodeFrameMessage(m); // the input's headers, kept on the output, say which camera and frame
      id = f.cameraId;
      frameNumber = f.frameNumber;
    } catch {
      return;
    }
    const h = headerMap(m.headers);
    const content = h.get('bgrm-content') ?? 'rgba/png';
    const source = parseOrigin(h.get('bgrm-source'));
    if (!this.cameras.has(id) && this.cameras.size >= MAX_CAMERAS) this.dropOldest(this.cameras, (c) => c.updatedAt);
    const previous = this.cameras.get(id);
    const view: CameraView = {
      id,
      frameNumber,
      updatedAt: Date.now(),
      content,
      image: m.value,
      source,
      e2eMs: Number(h.get('bgrm-e2e-ms') ?? NaN),
      worker: h.get('bgrm-worker'),
    };
    const mask = content.startsWith('mask');
    // without the frame topic a mask is shown alone; with it, once its input frame is fetched
    const pairs = mask && !!this.fetcher;
    view.shown = pairs ? previous?.shown : { frameNumber, image: m.value };
    this.cameras.set(id, view);
    if (pairs) void this.fetchFrame(view);
  }

  /** The input frame of a mask, read by its offset (at most one fetch at a time). */
  private async fetchFrame(view: CameraView): Promise<void> {
    const fetcher = this.fetcher;
    if (!fetcher || !view.source || this.fetching || view.source.topic !== this.opts.topic) return;
    this.fetching = true;
    try {
      fetcher.assign([{ topic: view.source.topic, partition: view.source.partition, offset: view.source.offset }]);
      const msgs = await new Promise<Kafka.Message[]>((resolve) => fetcher.consume(1, (err, ms) => resolve(err ? [] : ms)));
      const m = msgs.find((x) => x.offset === view.source!.offset && x.partition === view.source!.partition);
      if (m?.value) {
        const f = decodeFrameMessage({ topic: m.topic, partition: m.partition, offset: m.offset, key: m.key, value: m.value, headers: m.headers as KafkaHeaders });
        // the newest camera view shows this pair until a newer pair is complete
        const current = this.cameras.get(view.id);
        if (current && (!current.shown || current.shown.frameNumber !== view.frameNumber)) {
          current.shown = { frameNumber: view.frameNumber, image: view.image, frame: f.bytes };
        }
      }
    } catch {
      // a frame that cannot be read is shown as its mask alone
    } finally {
      try {
        fetcher.unassign();
      } catch {
        // disconnected
      }
      this.fetching = false;
    }
  }

  private dropOldest<V>(map: Map<string, V>, age: (v: V) => number): void {
    let oldest: string | undefined;
    for (const [k, v] of map) if (oldest === undefined || age(v) < age(map.get(oldest)!)) oldest = k;
    if (oldest !== undefined) map.delete(oldest);
  }

  private liveWorkers(): WorkerStatus[] {
    const now = Date.now();
    return [...this.workers.values()].filter((w) => now - w.receivedAt < WORKER_GONE_MS && w.status.state !== 'stopped').map((w) => w.status);
  }

  private async sampleHttp(): Promise<number> {
    const total = (await this.metrics.processed.get()).values.find((v) => v.labels.source === 'http')?.value ?? 0;
    const rate = Math.max(0, total - this.lastHttp);
    this.lastHttp = total;
    return rate;
  }

  private sample(): void {
    void this.sampleHttp().then((httpRate) => {
      const workers = this.liveWorkers();
      this.series.push({
        t: Date.now(),
        http: httpRate,
        workers: workers.reduce((n, w) => n + w.fps, 0),
        p95: workers.reduce((n, w) => Math.max(n, w.latencyMs.p95), 0),
        lag: workers.reduce((n, w) => n + Object.values(w.lag).reduce((a, b) => a + b, 0), 0),
      });
      if (this.series.length > SERIES) this.series.shift();
      if (this.clients.size > 0) {
        const data = `data: ${JSON.stringify(this.snapshot())}\n\n`;
        for (const res of this.clients) res.write(data);
      }
    });
  }

  /** Copies worker reports into gauges for /metrics (lag per partition, throughput). */
  updateGauges(): void {
    this.metrics.lag.reset();
    this.workerProcessed.reset();
    this.workerFps.reset();
    for (const w of this.liveWorkers()) {
      for (const [partition, lag] of Object.entries(w.lag)) this.metrics.lag.set({ worker: w.workerId, topic: w.topic, partition }, lag);
      this.workerProcessed.set({ worker: w.workerId }, w.processed);
      this.workerFps.set({ worker: w.workerId }, w.fps);
    }
  }

  snapshot(): object {
    return {
      at: Date.now(),
      http: this.load(),
      kafka: this.watching
        ? {
            brokers: this.opts.brokers,
            topic: this.opts.topic,
            outputTopic: this.opts.outputTopic,
            statusTopic: this.opts.statusTopic,
            connected: !!this.consumer,
            error: this.brokerError,
            waitingFor: this.waitingFor,
          }
        : null,
      workers: this.liveWorkers(),
      cameras: [...this.cameras.values()]
        .sort((a, b) => a.id.localeCompare(b.id))
        .map((c) => ({
          id: c.id,
          latestFrameNumber: c.frameNumber,
          frameNumber: c.shown?.frameNumber ?? c.frameNumber,
          updatedAt: c.updatedAt,
          content: c.content,
          hasFrame: !!c.shown?.frame,
          ready: !!c.shown,
          e2eMs: c.e2eMs,
          worker: c.worker,
        })),
      series: this.series,
    };
  }

  /** GET /v1/preview/CAMERA[?part=frame|mask]: the latest output of a camera (and, for a mask, its input frame). */
  preview(res: http.ServerResponse, camera: string): void {
    const c = this.cameras.get(camera);
    const url = new URL(res.req.url ?? '/', 'http://localhost');
    const part = url.searchParams.get('part');
    const shown = c?.shown;
    const body = part === 'frame' ? shown?.frame : shown?.image;
    if (!c || !shown || !body) {
      const msg = JSON.stringify({ error: { code: 'ERR_NOT_FOUND', message: `no processed frame of camera '${camera}' yet` } });
      res.writeHead(404, { 'Content-Type': 'application/json; charset=utf-8' });
      res.end(msg);
      return;
    }
    res.writeHead(200, {
      'Content-Type': part === 'frame' ? 'image/jpeg' : 'image/png',
      'Content-Length': body.length,
      'Cache-Control': 'no-store',
      'X-Frame-Number': String(shown!.frameNumber),
      'X-Content-Type-Options': 'nosniff',
    });
    res.end(body);
  }

  /** GET /v1/events: the snapshot every second as Server-Sent Events (at most 32 listeners). */
  stream(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (this.clients.size >= 32) {
      res.writeHead(503, { 'Retry-After': '5', 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'ERR_BUSY', message: 'too many dashboards are listening; retry later' } }));
      return;
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
    this.running = false;
    await this.loop;
    for (const c of [this.consumer, this.fetcher]) {
      if (c) await new Promise<void>((resolve) => c.disconnect(() => resolve()));
    }
    this.consumer = undefined;
    this.fetcher = undefined;
  }
}
