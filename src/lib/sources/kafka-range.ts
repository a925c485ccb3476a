// KafkaRangeSource: a fixed range of a topic read by assignment (no group, no commits), for replay.
// It stops by itself at the end of the range.
import * as Kafka from 'node-rdkafka';
import { BgrmError } from '../errors';
import type { Frame, FrameSource } from '../frame';
import { baseConfig, clientConfig, connectClient, type KafkaConnection } from '../kafka/client';
import { deniedError } from '../kafka/errors';
import { incoming, messageFrame } from '../kafka/messages';

export interface RangeOptions extends KafkaConnection {
  topic: string;
  partitions?: number[];
  fromOffset?: number;
  fromTimeMs?: number;
  /** Exclusive end offset; default: the partition's end when the replay starts. */
  toOffset?: number;
  /** Exclusive end time; frames produced at or after it are not replayed. */
  toTimeMs?: number;
  cameraIds?: string[];
  signal?: AbortSignal;
}

interface PartitionRange {
  partition: number;
  start: number;
  end: number; // exclusive
}

/** A callback call as a promise; an ACL refusal is named (deniedError), any other failure is ERR_KAFKA. */
function call<T>(conn: RangeOptions, fn: (cb: (err: Kafka.LibrdKafkaError | null, v: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => fn((err, v) => (err ? reject(failure(conn, err)) : resolve(v))));
}

function failure(conn: RangeOptions, err: Kafka.LibrdKafkaError): BgrmError {
  return deniedError(conn, err, { topic: conn.topic, topicOps: 'READ and DESCRIBE' }) ?? new BgrmError('ERR_KAFKA', err.message);
}

export class KafkaRangeSource implements FrameSource {
  private consumer?: Kafka.KafkaConsumer;
  ranges: PartitionRange[] = [];
  skipped = 0;
  total?: number;

  constructor(private readonly opts: RangeOptions) {}

  async open(): Promise<void> {
    const o = this.opts;
    const timeout = o.connectTimeoutMs ?? 10000;
    const consumer = new Kafka.KafkaConsumer(
      clientConfig(o, {
        ...baseConfig({ ...o, clientId: o.clientId ?? 'bgrm-replay' }),
        'group.id': `bgrm-replay-${process.pid}-${Date.now()}`, // required by librdkafka; never used to commit
        'enable.auto.commit': false,
        'enable.auto.offset.store': false,
        'isolation.level': 'read_committed',
        'queued.max.messages.kbytes': 32 * 1024,
        'fetch.message.max.bytes': 16 * 1024 * 1024,
      }),
      {},
    );
    await connectClient(consumer, o);
    this.consumer = consumer;
    const meta = await call<Kafka.Metadata>(o, (cb) => consumer.getMetadata({ topic: o.topic, timeout }, cb));
    const topic = meta.topics.find((t) => t.name === o.topic);
    if (!topic || topic.partitions.length === 0) throw (await this.deniedTopic(consumer)) ?? new BgrmError('ERR_NO_TOPIC', `topic ${o.topic} does not exist`);
    const all = topic.partitions.map((p) => p.id).sort((a, b) => a - b);
    const chosen = o.partitions ?? all;
    for (const p of chosen) if (!all.includes(p)) throw new BgrmError('ERR_USAGE', `topic ${o.topic} has no partition ${p} (it has ${all.join(', ')})`);

    const byTime = async (ms: number) =>
      call<Kafka.TopicPartitionOffset[]>(o, (cb) => consumer.offsetsForTimes(chosen.map((partition) => ({ topic: o.topic, partition, offset: ms })), timeout, cb));
    const fromTimes = o.fromTimeMs !== undefined ? await byTime(o.fromTimeMs) : undefined;
    const toTimes = o.toTimeMs !== undefined ? await byTime(o.toTimeMs) : undefined;
    for (const partition of chosen) {
      const wm = await call<Kafka.WatermarkOffsets>(o, (cb) => consumer.queryWatermarkOffsets(o.topic, partition, timeout, cb));
      // offsetsForTimes answers -1 when no message is that late: the range then starts (or ends) at the end.
      const atTime = (list: Kafka.TopicPartitionOffset[] | undefined) => {
        const off = list?.find((x) => x.partition === partition)?.offset;
        return off === undefined || off < 0 ? wm.highOffset : off;
      };
      let start = fromTimes ? atTime(fromTimes) : (o.fromOffset ?? wm.lowOffset);
      let end = toTimes ? atTime(toTimes) : (o.toOffset ?? wm.highOffset);
      start = Math.max(start, wm.lowOffset);
      end = Math.min(end, wm.highOffset);
      if (end > start) this.ranges.push({ partition, start, end });
    }
    this.total = this.ranges.reduce((n, r) => n + r.end - r.start, 0);
    if (this.ranges.length > 0) consumer.assign(this.ranges.map((r) => ({ topic: o.topic, partition: r.partition, offset: r.start })));
    consumer.setDefaultConsumeTimeout(200);
  }

  /**
   * A topic the metadata does not list may exist but be hidden by an ACL (the broker answers both
   * the same way there); a subscription is told which, at once.
   */
  private async deniedTopic(consumer: Kafka.KafkaConsumer): Promise<BgrmError | undefined> {
    consumer.subscribe([this.opts.topic]);
    consumer.setDefaultConsumeTimeout(1000);
    try {
      return await new Promise<BgrmError | undefined>((resolve) => consumer.consume(1, (err) => resolve(err ? deniedError(this.opts, err, { topic: this.opts.topic, topicOps: 'READ and DESCRIBE' }) : undefined)));
    } finally {
      consumer.unsubscribe();
    }
  }

  async *frames(): AsyncIterable<Frame> {
    if (!this.consumer) await this.open();
    const consumer = this.consumer!;
    const remaining = new Map(this.ranges.map((r) => [r.partition, r]));
    const pending = new Set(this.ranges.map((r) => r.partition));
    while (pending.size > 0 && !this.opts.signal?.aborted) {
      const msgs = await new Promise<Kafka.Message[]>((resolve, reject) => consumer.consume(8, (err, m) => (err ? reject(failure(this.opts, err)) : resolve(m))));
      for (const m of msgs) {
        const r = remaining.get(m.partition);
        if (!r || m.offset >= r.end) {
          if (r && pending.delete(m.partition)) consumer.pause([{ topic: m.topic, partition: m.partition }]);
          continue;
        }
        if (m.offset === r.end - 1 && pending.delete(m.partition)) consumer.pause([{ topic: m.topic, partition: m.partition }]);
        const frame = messageFrame(incoming(m));
        if (!frame.error && this.opts.cameraIds && !this.opts.cameraIds.includes(frame.cameraId)) {
          this.skipped++;
          continue;
        }
        yield frame;
      }
    }
  }

  async close(): Promise<void> {
    const c = this.consumer;
    this.consumer = undefined;
    if (c) await new Promise<void>((resolve) => c.disconnect(() => resolve()));
  }
}
