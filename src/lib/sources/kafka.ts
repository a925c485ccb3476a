// KafkaFrameSource: frames from a topic as a member of a consumer group. Messages are pulled only
// when the pipeline has room (bounded memory); offsets are committed only for frames whose output
// (or dead letter) is durable, in order per partition.
import * as Kafka from 'node-rdkafka';
import { errorCode, errorMessage } from '../errors';
import type { Frame, FrameSource } from '../frame';
import { unreachable, type KafkaConnection } from '../kafka/client';
import { decodeFrameMessage, type IncomingMessage, type KafkaHeaders } from '../kafka/messages';

export interface KafkaFrame extends Frame {
  message: IncomingMessage;
}

export interface KafkaSourceOptions extends KafkaConnection {
  topic: string;
  group: string;
  /** Stop when no message arrived for this long (batch use and tests); 0: run until stopped. */
  idleExitMs?: number;
  maxFrames?: number;
  /** Live mode: frames older than this at arrival (capture time to now) are skipped, counted and committed. */
  maxLagMs?: number;
  signal?: AbortSignal;
  batchSize?: number;
  commitIntervalMs?: number;
}

export class KafkaFrameSource implements FrameSource {
  private consumer?: Kafka.KafkaConsumer;
  /** Highest done offset + 1 per "topic:partition", not yet committed. */
  private readonly done = new Map<string, Kafka.TopicPartitionOffset>();
  private lastCommit = 0;
  received = 0;

  constructor(private readonly opts: KafkaSourceOptions) {}

  async connect(): Promise<void> {
    const consumer = new Kafka.KafkaConsumer(
      {
        'metadata.broker.list': this.opts.brokers,
        'client.id': this.opts.clientId ?? 'bgrm-worker',
        'group.id': this.opts.group,
        'enable.auto.commit': false,
        'enable.auto.offset.store': false,
        'partition.assignment.strategy': 'cooperative-sticky',
        'isolation.level': 'read_committed',
        'queued.max.messages.kbytes': 32 * 1024, // prefetch bound per partition queue
        'fetch.message.max.bytes': 16 * 1024 * 1024,
        'socket.connection.setup.timeout.ms': this.opts.connectTimeoutMs ?? 10000,
        'log.connection.close': false,
        rebalance_cb: (err: Kafka.LibrdKafkaError, assignment: Kafka.Assignment[]) => {
          // Before partitions go to another worker, commit what is done here.
          if (err.code === Kafka.CODES.ERRORS.ERR__REVOKE_PARTITIONS) this.commit(true);
          if (consumer.rebalanceProtocol() === 'COOPERATIVE') {
            if (err.code === Kafka.CODES.ERRORS.ERR__ASSIGN_PARTITIONS) consumer.incrementalAssign(assignment);
            else consumer.incrementalUnassign(assignment);
          } else if (err.code === Kafka.CODES.ERRORS.ERR__ASSIGN_PARTITIONS) consumer.assign(assignment);
          else consumer.unassign();
        },
      },
      { 'auto.offset.reset': 'earliest' },
    );
    await new Promise<void>((resolve, reject) =>
      consumer.connect({ timeout: this.opts.connectTimeoutMs ?? 10000 }, (err) => (err ? reject(unreachable(this.opts, err.message)) : resolve())),
    );
    consumer.setDefaultConsumeTimeout(200);
    consumer.subscribe([this.opts.topic]);
    this.consumer = consumer;
  }

  private pull(n: number): Promise<Kafka.Message[]> {
    return new Promise((resolve, reject) => this.consumer!.consume(n, (err, msgs) => (err ? reject(err) : resolve(msgs))));
  }

  async *frames(): AsyncIterable<Frame> {
    if (!this.consumer) await this.connect();
    let idleSince = Date.now();
    while (!this.opts.signal?.aborted) {
      if (this.opts.maxFrames !== undefined && this.received >= this.opts.maxFrames) break;
      const want = Math.min(this.opts.batchSize ?? 4, (this.opts.maxFrames ?? Infinity) - this.received);
      const msgs = await this.pull(want);
      this.commit(false);
      if (msgs.length === 0) {
        if (this.opts.idleExitMs && Date.now() - idleSince > this.opts.idleExitMs) break;
        continue;
      }
      idleSince = Date.now();
      for (const m of msgs) {
        this.received++;
        const message: IncomingMessage = {
          topic: m.topic,
          partition: m.partition,
          offset: m.offset,
          key: m.key,
          value: m.value,
          headers: m.headers as KafkaHeaders,
          timestamp: m.timestamp,
        };
        yield this.toFrame(message);
      }
    }
  }

  private toFrame(message: IncomingMessage): KafkaFrame {
    const origin = `${message.topic}[${message.partition}]@${message.offset}`;
    try {
      const f = decodeFrameMessage(message);
      const ageMs = Date.now() - f.timestampMs;
      const skip = this.opts.maxLagMs !== undefined && ageMs > this.opts.maxLagMs ? `stale: ${ageMs} ms old` : undefined;
      return { ...f, name: `${f.cameraId}/${String(f.frameNumber).padStart(8, '0')}`, message, skip };
    } catch (err) {
      return {
        bytes: Buffer.alloc(0),
        cameraId: 'unknown',
        frameNumber: message.offset,
        timestampMs: message.timestamp ?? Date.now(),
        origin,
        name: '',
        error: { code: errorCode(err), message: errorMessage(err) },
        message,
      };
    }
  }

  /** Marks a frame finished (its output or dead letter is durable); frames finish in order per partition. */
  markDone(frame: KafkaFrame): void {
    const { topic, partition, offset } = frame.message;
    this.done.set(`${topic}:${partition}`, { topic, partition, offset: offset + 1 });
  }

  private commit(sync: boolean): void {
    if (!this.consumer || this.done.size === 0) return;
    if (!sync && Date.now() - this.lastCommit < (this.opts.commitIntervalMs ?? 1000)) return;
    const offsets = [...this.done.values()];
    this.done.clear();
    this.lastCommit = Date.now();
    try {
      if (sync) this.consumer.commitSync(offsets);
      else this.consumer.commit(offsets);
    } catch {
      // a partition revoked meanwhile: its next owner reprocesses from the last commit (outputs are idempotent)
    }
  }

  async close(): Promise<void> {
    if (!this.consumer) return;
    this.commit(true);
    const c = this.consumer;
    this.consumer = undefined;
    await new Promise<void>((resolve) => c.disconnect(() => resolve()));
  }
}
