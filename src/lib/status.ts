// Worker status records: every few seconds a worker publishes one small JSON record (who it is,
// its partitions, throughput, latency, lag, last error) to a status topic, keyed by worker id, so
// that `bgrm serve` can show every worker without connecting to any of them.
import type * as Kafka from 'node-rdkafka';
import { connectProducer, ensureTopic, type KafkaConnection } from './kafka/client';
import { deniedError } from './kafka/errors';

export const STATUS_KIND = 'bgrm-worker-status';

export interface WorkerStatus {
  kind: typeof STATUS_KIND;
  version: 1;
  workerId: string;
  group: string;
  topic: string;
  output: string;
  model: string;
  state: 'running' | 'stopped';
  startedAt: number;
  at: number;
  /** Partitions of `topic` assigned to this worker now. */
  partitions: number[];
  /** Frames per second over the last interval. */
  fps: number;
  processed: number;
  failed: number;
  deadLettered: number;
  skipped: number;
  latencyMs: { p50: number; p95: number; p99: number; max: number };
  /** Live depth: frames in the pipeline now, and the mean and most at each arrival since the start. */
  inFlight?: number;
  depth?: { mean: number; max: number };
  /** Exactly-once output: how long a transaction stays open now (ms); absent for a folder. */
  commitIntervalMs?: number;
  /** The worker process's peak resident memory so far, in bytes. */
  peakRssBytes?: number;
  /** Messages not yet processed, per assigned partition (high watermark minus position). */
  lag: Record<string, number>;
  lastError?: { code: string; message: string; at: number };
}

/** What a publisher asks of the worker at each interval. */
export type StatusProbe = () => Promise<Omit<WorkerStatus, 'kind' | 'version' | 'at' | 'fps' | 'state'>>;

export class StatusPublisher {
  private producer?: Kafka.Producer;
  private timer?: NodeJS.Timeout;
  private last?: { at: number; processed: number };
  private busy = false;

  constructor(
    private readonly conn: KafkaConnection,
    private readonly topic: string,
    private readonly probe: StatusProbe,
    private readonly intervalMs = 2000,
  ) {}

  async start(): Promise<void> {
    await ensureTopic(this.conn, this.topic, 1);
    // Status is advisory: a lost record is replaced by the next one, so no idempotence needed.
    this.producer = await connectProducer(this.conn, { 'enable.idempotence': false, 'linger.ms': 50 });
    this.producer.on('delivery-report', (err) => err && this.refused(err));
    this.timer = setInterval(() => void this.publish('running'), this.intervalMs);
    this.timer.unref();
    await this.publish('running');
  }

  private async publish(state: WorkerStatus['state']): Promise<void> {
    const producer = this.producer;
    if (!producer || this.busy) return;
    this.busy = true;
    try {
      const s = await this.probe();
      const now = Date.now();
      const fps = this.last && now > this.last.at ? ((s.processed - this.last.processed) * 1000) / (now - this.last.at) : 0;
      this.last = { at: now, processed: s.processed };
      const record: WorkerStatus = { kind: STATUS_KIND, version: 1, ...s, state, at: now, fps: Math.round(fps * 100) / 100 };
      producer.produce(this.topic, null, Buffer.from(JSON.stringify(record)), s.workerId, now);
    } catch (err) {
      // a status that cannot be sent now is sent at the next interval, unless an ACL refuses it
      this.refused(err as Kafka.LibrdKafkaError);
    } finally {
      this.busy = false;
    }
  }

  private warned = false;

  /** Says once (stderr) that the cluster's ACLs refuse the status topic; the worker goes on without status. */
  private refused(err: Kafka.LibrdKafkaError): void {
    const denied = deniedError(this.conn, err, { topic: this.topic, topicOps: 'WRITE and DESCRIBE' });
    if (!denied || this.warned) return;
    this.warned = true;
    process.stderr.write(`bgrm worker: no status records (${denied.code}): ${denied.message}; the frames are processed all the same\n`);
  }

  /** Publishes a last 'stopped' record and flushes. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    const producer = this.producer;
    if (!producer) return;
    while (this.busy) await new Promise((r) => setTimeout(r, 20));
    await this.publish('stopped');
    this.producer = undefined;
    await new Promise<void>((resolve) => producer.flush(5000, () => resolve()));
    await new Promise<void>((resolve) => producer.disconnect(() => resolve()));
  }
}
