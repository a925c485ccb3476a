// The dashboard's model: every worker (from the status records they publish), the latest processed
// frame of each camera (from the output topic), and the last 300 seconds of throughput, latency and
// lag. Everything is bounded: at most 64 workers, 32 cameras, 300 points. No I/O here: the feed
// brings records in, the snapshot goes out.
import { decodeFrameMessage, headerMap, parseOrigin, type IncomingMessage } from '../kafka/messages';
import { STATUS_KIND, type WorkerStatus } from '../status';

export interface CameraView {
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

/** Reads an input frame by its offset (serve's Kafka feed). */
export interface FrameFetcher {
  readonly fetchesFrames: boolean;
  fetchFrame(source: { topic: string; partition: number; offset: number }): Promise<Buffer | undefined>;
}

const MAX_WORKERS = 64;
const MAX_CAMERAS = 32;
const SERIES = 300;
const WORKER_GONE_MS = 20000;

function dropOldest<V>(map: Map<string, V>, age: (v: V) => number): void {
  let oldest: string | undefined;
  for (const [k, v] of map) if (oldest === undefined || age(v) < age(map.get(oldest)!)) oldest = k;
  if (oldest !== undefined) map.delete(oldest);
}

export class DashboardModel {
  private readonly workers = new Map<string, { status: WorkerStatus; receivedAt: number }>();
  readonly cameras = new Map<string, CameraView>();
  private readonly series: Point[] = [];

  /**
   * `frames`, when it can, reads a mask's input frame (by its offset), so that the preview shows the
   * pair; without it a mask is shown alone.
   */
  constructor(private readonly frames?: FrameFetcher) {}

  onStatus(m: IncomingMessage): void {
    let status: WorkerStatus;
    try {
      status = JSON.parse(m.value?.toString() ?? '') as WorkerStatus;
    } catch {
      return; // not ours: a status topic is shared with nothing else, but be robust
    }
    if (status?.kind !== STATUS_KIND || typeof status.workerId !== 'string') return;
    if (!this.workers.has(status.workerId) && this.workers.size >= MAX_WORKERS) dropOldest(this.workers, (w) => w.receivedAt);
    this.workers.set(status.workerId, { status, receivedAt: Date.now() });
  }

  onOutput(m: IncomingMessage): void {
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
    if (!this.cameras.has(id) && this.cameras.size >= MAX_CAMERAS) dropOldest(this.cameras, (c) => c.updatedAt);
    const previous = this.cameras.get(id);
    const view: CameraView = {
      id,
      frameNumber,
      updatedAt: Date.now(),
      content,
      image: m.value,
      source: parseOrigin(h.get('bgrm-source')),
      e2eMs: Number(h.get('bgrm-e2e-ms') ?? NaN),
      worker: h.get('bgrm-worker'),
    };
    // without the frame topic a mask is shown alone; with it, once its input frame is fetched
    const pairs = content.startsWith('mask') && !!this.frames?.fetchesFrames;
    view.shown = pairs ? previous?.shown : { frameNumber, image: m.value };
    this.cameras.set(id, view);
    if (pairs && view.source) void this.pair(view, view.source);
  }

  /** Shows a mask with its input frame once the frame is read (the newest pair wins). */
  private async pair(view: CameraView, source: { topic: string; partition: number; offset: number }): Promise<void> {
    const frame = await this.frames!.fetchFrame(source);
    if (!frame) return;
    const current = this.cameras.get(view.id);
    if (current && (!current.shown || current.shown.frameNumber !== view.frameNumber)) {
      current.shown = { frameNumber: view.frameNumber, image: view.image, frame };
    }
  }

  liveWorkers(): WorkerStatus[] {
    const now = Date.now();
    return [...this.workers.values()].filter((w) => now - w.receivedAt < WORKER_GONE_MS && w.status.state !== 'stopped').map((w) => w.status);
  }

  /** One point of the series (every second): the HTTP rate given, the workers' as they report. */
  sample(httpRate: number): void {
    const workers = this.liveWorkers();
    this.series.push({
      t: Date.now(),
      http: httpRate,
      workers: workers.reduce((n, w) => n + w.fps, 0),
      p95: workers.reduce((n, w) => Math.max(n, w.latencyMs.p95), 0),
      lag: workers.reduce((n, w) => n + Object.values(w.lag).reduce((a, b) => a + b, 0), 0),
    });
    if (this.series.length > SERIES) this.series.shift();
  }

  snapshot(http: unknown, kafka: unknown): object {
    return {
      at: Date.now(),
      http,
      kafka,
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
}
