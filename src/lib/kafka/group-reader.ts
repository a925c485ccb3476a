// GroupReader: frames from a topic as a member of a consumer group, and nothing about commits.
// It tracks which partitions this member owns, pulls messages only when the pipeline asks (bounded
// memory), keeps the highest finished offset per partition, and can rewind to the committed offsets
// (every frame read before becomes void: a new epoch). Who commits is its owner's business: the
// at-least-once source (sources/kafka.ts) commits the consumer's offsets, the exactly-once unit
// (kafka/exactly-once.ts) puts them into its transactions.
import * as Kafka from 'node-rdkafka';
import { trace } from '../debug';
import { BgrmError } from '../errors';
import type { Frame, FrameSource } from '../frame';
import { baseConfig, clientConfig, connectClient, type KafkaConnection } from './client';
import { rdkafkaClients, type KafkaClients } from './clients';
import { deniedError } from './errors';
import { incoming, messageFrame, type IncomingMessage } from './messages';

export interface KafkaFrame extends Frame {
  message: IncomingMessage;
  /** The reader's epoch when the frame was read; frames of an older epoch were rewound and are void. */
  epoch: number;
}

export interface GroupReaderOptions extends KafkaConnection {
  topic: string;
  group: string;
  /** Stop when no message arrived for this long (batch use and tests); 0: run until stopped. */
  idleExitMs?: number;
  maxFrames?: number;
  /** Live mode: frames older than this at arrival (capture time to now) are skipped, counted and committed. */
  maxLagMs?: number;
  signal?: AbortSignal;
  batchSize?: number;
  /**
   * Static group membership (a stable --worker-id): a restarted worker takes its partitions back at
   * once instead of waiting for the dead one's session to expire.
   */
  staticMemberId?: string;
  /** Where the consumer comes from (default: node-rdkafka; a fake broker in unit tests). */
  clients?: KafkaClients;
  /** How long leaving the group may take before close() gives up (default CLOSE_TIMEOUT_MS). */
  closeTimeoutMs?: number;
}

/** The key of a topic's partition in the reader's maps and sets. */
export const tp = (x: { topic: string; partition: number }) => `${x.topic}:${x.partition}`;

export class GroupReader implements FrameSource {
  protected consumer?: Kafka.KafkaConsumer;
  /** Highest done offset + 1 per "topic:partition", not yet committed. */
  protected readonly done = new Map<string, Kafka.TopicPartitionOffset>();
  /** Partitions assigned to this member now ("topic:partition"); messages of others are not ours. */
  protected readonly owned = new Set<string>();
  /** The fetch in progress, and a rewind in progress: the two never overlap. */
  private pulling?: Promise<Kafka.Message[]>;
  private seeking?: Promise<void>;
  /** Set by fail(): the frames end with this error at the next turn. */
  private failure?: unknown;
  received = 0;
  epoch = 0;
  /**
   * The last fetch drained the assigned partitions (fewer messages than asked for): the worker
   * keeps up with its stream, and an exactly-once sink commits promptly rather than batching.
   */
  caughtUp = true;

  constructor(protected readonly opts: GroupReaderOptions) {}

  /**
   * Partitions are being revoked (already no longer owned here). The default gives them up at once;
   * an owner that must first settle their work (commit, abort) overrides this and calls unassign().
   */
  protected revoked(partitions: Kafka.Assignment[], consumer: Kafka.KafkaConsumer): void {
    this.unassign(partitions, consumer);
  }

  /** After every fetch (the at-least-once source commits here). */
  protected fetched(): void {}

  async connect(): Promise<void> {
    const config: Kafka.ConsumerGlobalConfig = clientConfig(this.opts, {
      ...baseConfig({ ...this.opts, clientId: this.opts.clientId ?? 'bgrm-worker' }),
      'group.id': this.opts.group,
      'enable.auto.commit': false,
      'enable.auto.offset.store': false,
      'partition.assignment.strategy': 'cooperative-sticky',
      'isolation.level': 'read_committed',
      'queued.max.messages.kbytes': 32 * 1024, // prefetch bound per partition queue
      'fetch.message.max.bytes': 16 * 1024 * 1024,
      'session.timeout.ms': 15000,
      ...(this.opts.staticMemberId ? { 'group.instance.id': this.opts.staticMemberId } : {}),
      rebalance_cb: (err: Kafka.LibrdKafkaError, assignment: Kafka.Assignment[]) => {
        const assigning = err.code === Kafka.CODES.ERRORS.ERR__ASSIGN_PARTITIONS;
        trace('kafka', () => `${assigning ? 'assigned' : 'revoked'} ${assignment.map(tp).join(' ') || '(none)'}`);
        if (assigning) {
          for (const a of assignment) this.owned.add(tp(a));
          if (this.cooperative(consumer)) consumer.incrementalAssign(assignment);
          else consumer.assign(assignment);
          return;
        }
        // Revoked: from now on nothing of these partitions is processed or committed here.
        for (const a of assignment) {
          this.owned.delete(tp(a));
          this.ownCommits.delete(tp(a));
        }
        this.revoked(assignment, consumer);
      },
    });
    this.strategy = String(config['partition.assignment.strategy']);
    const consumer = (this.opts.clients ?? rdkafkaClients).consumer(config, { 'auto.offset.reset': 'earliest' });
    await connectClient(consumer, this.opts);
    // librdkafka reports a lost broker here (and reconnects by itself)
    consumer.on('event.error', () => (this.troubledAt = Date.now()));
    consumer.subscribe([this.opts.topic]);
    this.consumer = consumer;
  }

  /** Gives revoked partitions up (the second half of a rebalance). */
  unassign(partitions: Kafka.Assignment[], consumer = this.consumer): void {
    if (!consumer) return;
    try {
      if (this.cooperative(consumer)) consumer.incrementalUnassign(partitions);
      else consumer.unassign();
    } catch (err) {
      // disconnected meanwhile: nothing left to give up
      trace('kafka', () => `unassign refused: ${(err as Error).message}`);
    }
  }

  /** The group's rebalance protocol as last seen while connected (see cooperative()). */
  private protocol?: string;

  /**
   * Does the group rebalance cooperatively (incremental assign and unassign)? node-rdkafka answers
   * "NONE" while the consumer is closing, which is exactly when the last revocation comes; a
   * consumer that then gave its partitions up the eager way would never finish closing. So the
   * answer seen while connected is kept, and before any the configured strategy decides.
   */
  private cooperative(consumer: Kafka.KafkaConsumer): boolean {
    const now = consumer.rebalanceProtocol();
    if (now === 'COOPERATIVE' || now === 'EAGER') this.protocol = now;
    return (this.protocol ?? (this.strategy === 'cooperative-sticky' ? 'COOPERATIVE' : 'EAGER')) === 'COOPERATIVE';
  }

  /** partition.assignment.strategy as configured (bgrm's default, or the user's -X setting). */
  private strategy = 'cooperative-sticky';

  /** Ends the frames with this error at the next turn (within one fetch, 200 ms): the owner cannot go on. */
  fail(err: unknown): void {
    this.failure ??= err;
  }

  /**
   * Up to n messages: the first waits up to 200 ms, the rest only if they are there already, so a
   * caught-up live stream hands each frame on when it arrives (librdkafka would otherwise wait for
   * the whole batch, message by message). Transient errors (a broker restarting) give an empty
   * batch after a pause.
   */
  private async pull(n: number): Promise<Kafka.Message[]> {
    const first = await this.consume(1, 200);
    if (first.length === 0 || n <= 1) return first;
    return [...first, ...(await this.consume(n - 1, 1))];
  }

  private consume(n: number, timeoutMs: number): Promise<Kafka.Message[]> {
    const consumer = this.consumer!;
    consumer.setDefaultConsumeTimeout(timeoutMs);
    return new Promise((resolve, reject) =>
      consumer.consume(n, (err, msgs) => {
        if (!err) return resolve(msgs);
        if ((err as Kafka.LibrdKafkaError & { isFatal?: boolean }).isFatal) return reject(new BgrmError('ERR_KAFKA_FATAL', err.message));
        // an ACL refusal does not pass like a broker restart: stop and name it
        const denied = deniedError(this.opts, err, { topic: this.opts.topic, group: this.opts.group, topicOps: 'READ and DESCRIBE' });
        if (denied) return reject(denied);
        this.troubledAt = Date.now();
        setTimeout(() => resolve([]), 500);
      }),
    );
  }

  /** When the broker last failed a fetch: time without messages then is not idleness. */
  private troubledAt = 0;

  async *frames(): AsyncIterable<Frame> {
    if (!this.consumer) await this.connect();
    let idleSince = Date.now();
    while (!this.opts.signal?.aborted) {
      if (this.failure) throw this.failure;
      if (this.opts.maxFrames !== undefined && this.received >= this.opts.maxFrames) break;
      const want = Math.min(this.opts.batchSize ?? 4, (this.opts.maxFrames ?? Infinity) - this.received);
      if (this.seeking) await this.seeking.catch(() => undefined); // a rewind repositions the partitions: wait for it
      const epoch = this.epoch;
      const pulling = this.pull(want);
      this.pulling = pulling;
      const fetched = await pulling;
      this.pulling = undefined;
      this.caughtUp = fetched.length < want;
      this.fetched();
      // Messages of partitions revoked meanwhile belong to their new owner, who reads them from the committed offset.
      const msgs = fetched.filter((m) => this.owned.has(tp(m)));
      if (fetched.length === 0) {
        // --idle-exit counts quiet time only: not a broker outage, nor a rewind in progress
        if (this.troubledAt > idleSince || this.seeking) idleSince = Date.now();
        if (this.opts.idleExitMs && Date.now() - idleSince > this.opts.idleExitMs) {
          trace('kafka', () => `idle for ${this.opts.idleExitMs} ms: the frames end`);
          break;
        }
        continue;
      }
      idleSince = Date.now();
      for (const m of msgs) {
        this.received++;
        yield this.toFrame(incoming(m), epoch);
      }
    }
  }

  private toFrame(message: IncomingMessage, epoch: number): KafkaFrame {
    const f = messageFrame(message);
    const ageMs = Date.now() - f.timestampMs;
    const skip = !f.error && this.opts.maxLagMs !== undefined && ageMs > this.opts.maxLagMs ? `stale: ${ageMs} ms old` : undefined;
    return { ...f, message, skip, epoch };
  }

  /** Marks a frame finished (its output or dead letter is durable); frames finish in order per partition. */
  markDone(frame: KafkaFrame): void {
    const { topic, partition, offset } = frame.message;
    if (frame.epoch !== this.epoch || !this.owned.has(tp(frame.message))) return;
    this.done.set(tp(frame.message), { topic, partition, offset: offset + 1 });
  }

  /**
   * Offsets this member committed itself (in a transaction that succeeded), per "topic:partition".
   * A broker answers an offset fetch right after a transaction with the offsets from before it
   * until the transaction's markers are written; a rewind never goes behind what it knows.
   */
  private readonly ownCommits = new Map<string, number>();

  /** Is this partition assigned to this member now? */
  owns(topic: string, partition: number): boolean {
    return this.owned.has(tp({ topic, partition }));
  }

  noteCommitted(offsets: Kafka.TopicPartitionOffset[]): void {
    for (const o of offsets) {
      const key = tp(o);
      if (this.owned.has(key)) this.ownCommits.set(key, Math.max(o.offset, this.ownCommits.get(key) ?? -1));
    }
  }

  /** The next offsets to commit, forgetting them here. */
  takeDone(): Kafka.TopicPartitionOffset[] {
    const offsets = [...this.done.values()];
    this.done.clear();
    return offsets;
  }

  /** Partitions of the input topic assigned here now. */
  assignedPartitions(): number[] {
    return [...this.owned].map((k) => Number(k.slice(k.lastIndexOf(':') + 1))).sort((a, b) => a - b);
  }

  /** Messages not yet read, per assigned partition (high watermark minus this consumer's position). */
  async lag(): Promise<Record<string, number>> {
    const consumer = this.consumer;
    if (!consumer) return {};
    const out: Record<string, number> = {};
    const assigned = [...this.owned].map((k) => ({ topic: k.slice(0, k.lastIndexOf(':')), partition: Number(k.slice(k.lastIndexOf(':') + 1)) }));
    let positions: Kafka.TopicPartitionOffset[] = [];
    try {
      positions = consumer.position(assigned);
    } catch {
      return out;
    }
    for (const p of positions) {
      const high = await new Promise<number | undefined>((resolve) =>
        consumer.queryWatermarkOffsets(p.topic, p.partition, 2000, (err, w) => resolve(err ? undefined : w.highOffset)),
      );
      if (high === undefined) continue;
      const position = typeof p.offset === 'number' && p.offset >= 0 ? p.offset : undefined;
      if (position !== undefined) out[String(p.partition)] = Math.max(0, high - position); // unknown before the first fetch
    }
    return out;
  }

  get kafkaConsumer(): Kafka.KafkaConsumer {
    if (!this.consumer) throw new BgrmError('ERR_INVALID_STATE', 'the Kafka source is not connected');
    return this.consumer;
  }

  /**
   * After an aborted transaction: every frame read so far becomes void (new epoch), and each
   * partition still assigned here is read again from its last committed offset.
   */
  async rewind(): Promise<void> {
    const consumer = this.kafkaConsumer;
    const reposition = async () => {
      // A fetch in progress finishes first: its messages carry the old epoch and are void; the
      // next fetch starts only after the seeks, so it reads from the committed offsets.
      await this.pulling?.catch(() => undefined);
      this.epoch++;
      this.done.clear();
      const assigned = consumer.assignments().map((a) => ({ topic: a.topic, partition: a.partition }));
      if (assigned.length === 0) return;
      const committed = await new Promise<Kafka.TopicPartitionOffset[]>((resolve, reject) =>
        consumer.committed(assigned, 10000, (err, offsets) => (err ? reject(new BgrmError('ERR_KAFKA', err.message)) : resolve(offsets))),
      );
      for (const c of committed) {
        const known = Math.max(c.offset, this.ownCommits.get(tp(c)) ?? -1);
        const offset = known >= 0 ? known : -2; // -2: librdkafka's OFFSET_BEGINNING (nothing committed yet)
        await new Promise<void>((resolve, reject) =>
          consumer.seek({ topic: c.topic, partition: c.partition, offset }, 10000, (err) =>
            err ? reject(new BgrmError('ERR_KAFKA', `cannot rewind ${c.topic}[${c.partition}] to ${offset}: ${err.message}`)) : resolve(),
          ),
        );
      }
    };
    // A broker that is restarting answers again within seconds: try for up to a minute.
    const withRetries = async () => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await reposition();
        } catch (err) {
          if (attempt >= 30) throw err;
          await new Promise((res) => setTimeout(res, 2000));
        }
      }
    };
    trace('kafka', () => 'rewinding to the committed offsets');
    this.seeking = withRetries();
    try {
      await this.seeking;
    } finally {
      this.seeking = undefined;
      trace('kafka', () => `rewound (epoch ${this.epoch})`);
    }
  }

  /**
   * Leaves the group. librdkafka finishes a close only once the last revocation is answered; should
   * that never come (a rebalance it waits on for good), the close is given up after
   * `closeTimeoutMs` with a warning, so that a stopped worker still ends. Nothing is lost then: its
   * outputs were committed before, and the group hands its partitions on when its session expires.
   */
  async close(): Promise<void> {
    const c = this.consumer;
    this.consumer = undefined;
    if (!c) return;
    trace('kafka', () => 'leaving the group');
    const limitMs = this.opts.closeTimeoutMs ?? CLOSE_TIMEOUT_MS;
    let timer: NodeJS.Timeout | undefined;
    const left = await Promise.race([
      new Promise<boolean>((resolve) => c.disconnect(() => resolve(true))),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), limitMs))),
    ]);
    clearTimeout(timer);
    if (left) return trace('kafka', () => 'left the group');
    abandoned++;
    process.stderr.write(
      `bgrm worker: the consumer did not leave group ${this.opts.group} within ${limitMs / 1000} s (librdkafka is waiting on a rebalance); ` +
        'stopping without it. Committed frames are safe; the group hands its partitions to other workers once its session expires (15 s).\n',
    );
  }
}

/** How long a consumer may take to leave its group before the close is given up. */
export const CLOSE_TIMEOUT_MS = 30000;

let abandoned = 0;

/**
 * Consumers whose close was given up: librdkafka still holds a thread of theirs, so the process
 * does not end by itself; the command that ran them exits explicitly when this is above 0.
 */
export function abandonedConsumers(): number {
  return abandoned;
}
