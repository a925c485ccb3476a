// TransactionalTopicSink: consume -> process -> produce, exactly once. Outputs, dead letters and the
// consumer's offsets go into one Kafka transaction per batch; read_committed readers see each frame
// once. When a transaction cannot commit (a rebalance moved partitions, the broker restarted), it
// is aborted, the source rewinds to the committed offsets, and the frames are processed again.
// A reader sees a frame only once its transaction commits, so the batch follows the stream: a
// worker that has caught up commits every `liveCommitMs` (100 ms), one that is behind batches
// `batchFrames` frames or `batchMs` for throughput.
import * as Kafka from 'node-rdkafka';
import { BgrmError, errorMessage } from '../errors';
import type { FrameSink, ProcessedFrame } from '../frame';
import { baseConfig, clientConfig, connectClient, type KafkaConnection } from '../kafka/client';
import { rdkafkaClients, type KafkaClients } from '../kafka/clients';
import { deniedError } from '../kafka/errors';
import { deadLetterHeaders, originOf, type KafkaHeaders } from '../kafka/messages';
import type { KafkaFrame } from '../sources/kafka';

export interface TopicSinkOptions extends KafkaConnection {
  outputTopic: string;
  dlqTopic: string;
  partitions: number;
  /** Stable per worker: a restarted worker with the same id fences and aborts its predecessor's transaction. */
  transactionalId: string;
  workerId: string;
  model: string;
  /** What the value holds, for consumers ("mask/png" or "rgba/png"). */
  content: string;
  maxMessageBytes: number;
  /** Behind (a backlog to work through): commit every this many frames or ms, whichever comes first. */
  batchFrames?: number;
  batchMs?: number;
  /** Caught up with the stream: commit the open transaction this long after it began. */
  liveCommitMs?: number;
  /** Told the capture timestamps of a transaction's frames once it commits (visible to readers). */
  onCommitted?: (timestampsMs: number[]) => void;
  /** Where the producer comes from (default: node-rdkafka; a fake broker in unit tests). */
  clients?: KafkaClients;
}

/**
 * The door between the transactional sink and the group reader whose offsets its transactions
 * commit (KafkaFrameSource with externalCommit): frames carry the reader's epoch, done offsets are
 * taken into the transaction, and after an abort the reader rewinds to what was committed.
 */
export interface TransactionInput {
  /** Frames of an older epoch were rewound: they are void and come again. */
  readonly epoch: number;
  /** The last fetch drained the stream: commit promptly rather than batch. */
  readonly caughtUp: boolean;
  /** The consumer whose group the offsets belong to (sendOffsetsToTransaction). */
  readonly kafkaConsumer: Kafka.KafkaConsumer;
  /** Partitions being revoked go through this first (abort, then unassign and rewind). */
  revokeHandler?: (partitions: Kafka.Assignment[]) => Promise<void>;
  owns(topic: string, partition: number): boolean;
  markDone(frame: KafkaFrame): void;
  /** The next offsets to commit, forgotten by the reader. */
  takeDone(): Kafka.TopicPartitionOffset[];
  noteCommitted(offsets: Kafka.TopicPartitionOffset[]): void;
  rewind(): Promise<void>;
  unassign(partitions: Kafka.Assignment[]): void;
}

export const LIVE_COMMIT_MS = 100;
export const BATCH_COMMIT_MS = 1000;
export const BATCH_COMMIT_FRAMES = 16;

/** Serialises async sections (produce, commit) on one producer. */
class Lock {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.tail.then(fn, fn);
    this.tail = next.catch(() => undefined);
    return next;
  }
}

function cb<T = void>(fn: (done: (err: Kafka.LibrdKafkaError | null, v?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => fn((err, v) => (err ? reject(err) : resolve(v as T))));
}

export class TransactionalTopicSink implements FrameSink {
  private producer?: Kafka.Producer;
  private inTransaction = false;
  private framesInBatch = 0;
  /** Frames whose output is produced but whose offset is not yet marked done: no commit in between. */
  private unsettled = 0;
  private batchStarted = 0;
  /** Capture timestamps of the frames output in the open transaction. */
  private batchTimestamps: number[] = [];
  private readonly lock = new Lock();
  private timer?: NodeJS.Timeout;
  private closing = false;
  committedTransactions = 0;
  abortedTransactions = 0;
  deadLettered = 0;
  produced = 0;

  private readonly clients: KafkaClients;

  constructor(
    private readonly opts: TopicSinkOptions,
    private readonly source: TransactionInput,
  ) {
    this.clients = opts.clients ?? rdkafkaClients;
    // A partition moving to another worker: this worker's open transaction may hold its outputs.
    // Abort it before the partition goes, then read what stays here again from the committed offsets.
    source.revokeHandler = (partitions) =>
      this.lock.run(async () => {
        await this.abortBatch().catch((err: Error) => this.replaceProducer(err.message));
        this.source.unassign(partitions);
        await this.source.rewind();
      });
  }

  async open(): Promise<void> {
    await this.clients.ensureTopic(this.opts, this.opts.outputTopic, this.opts.partitions);
    await this.clients.ensureTopic(this.opts, this.opts.dlqTopic, 1);
    const producer = await this.connectProducer();
    this.producer = producer;
  }

  /** How long a transaction stays open now: short while the source is caught up, longer while it is behind. */
  get commitIntervalMs(): number {
    return this.source.caughtUp ? (this.opts.liveCommitMs ?? LIVE_COMMIT_MS) : (this.opts.batchMs ?? BATCH_COMMIT_MS);
  }

  /** Commits the open transaction when its time is up (also when no more frames arrive). */
  private scheduleCommit(): void {
    if (this.timer || this.closing) return;
    const due = this.batchStarted + this.commitIntervalMs;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (!this.inTransaction || this.closing) return;
      if (Date.now() < this.batchStarted + this.commitIntervalMs) return this.scheduleCommit();
      this.lock
        .run(async () => {
          if (!this.inTransaction) return;
          // a frame between its output and its offset: the commit waits for it
          if (this.unsettled > 0) return this.scheduleCommit();
          await this.commitBatch();
        })
        .catch((err: unknown) => (this.broken = err)); // the next frame reports it
    }, Math.max(5, due - Date.now()));
    this.timer.unref();
  }

  /** A transactional producer, connected; initTransactions settles what an earlier one of this id left open. */
  private async connectProducer(): Promise<Kafka.Producer> {
    const producer = this.clients.producer(
      clientConfig(this.opts, {
        ...baseConfig({ ...this.opts, clientId: `bgrm-${this.opts.workerId}` }),
        'transactional.id': this.opts.transactionalId,
        'transaction.timeout.ms': 15000, // an abandoned transaction (killed worker) is aborted within 15 s
        'enable.idempotence': true,
        'message.max.bytes': Math.max(this.opts.maxMessageBytes + 64 * 1024, 1024 * 1024),
        'linger.ms': 5,
        dr_cb: true,
      }),
    );
    // A write the cluster's ACLs refuse fails the commit as "failed delivery"; its report names the topic's refusal
    producer.on('delivery-report', (err: Kafka.LibrdKafkaError | null) => {
      if (err) this.denied ??= deniedError(this.opts, err, { topic: this.opts.outputTopic, topicOps: 'WRITE and DESCRIBE' });
    });
    await connectClient(producer, this.opts);
    producer.setPollInterval(50);
    await this.retrying('start', () => cb((done) => producer.initTransactions(30000, done))).catch((err: Kafka.LibrdKafkaError) => {
      producer.disconnect();
      throw (
        deniedError(this.opts, err, { transactionalId: this.opts.transactionalId, topic: this.opts.outputTopic, topicOps: 'WRITE and DESCRIBE' }) ??
        new BgrmError('ERR_KAFKA', `cannot start transactions as ${this.opts.transactionalId}: ${errorMessage(err)}`)
      );
    });
    return producer;
  }

  /**
   * The producer is in a state no abort can clear (the coordinator timed the transaction out during
   * a broker outage, a commit's outcome is unknown): start a new producer with the same
   * transactional id. Its initTransactions completes or aborts the old transaction for good, so the
   * committed offsets tell exactly what was output; the caller rewinds to them. Call under the lock.
   */
  private async replaceProducer(reason: string): Promise<void> {
    const now = Date.now();
    this.replacements = this.replacements.filter((t) => now - t < 300000);
    this.replacements.push(now);
    if (this.replacements.length > 3) {
      throw new BgrmError('ERR_KAFKA_FATAL', `transactions keep failing (${reason}); is another worker using the same --worker-id?`);
    }
    const old = this.producer;
    this.producer = undefined;
    this.endBatch();
    if (old) await Promise.race([new Promise<void>((resolve) => old.disconnect(() => resolve())), new Promise((res) => setTimeout(res, 5000))]);
    this.producer = await this.connectProducer();
    this.abortedTransactions++;
  }

  private replacements: number[] = [];
  /** The cluster refused a write (an ACL): no retry helps, the worker stops with this error. */
  private denied?: BgrmError;
  /** A failure of a commit the timer started; the next frame's write fails with it. */
  private broken?: unknown;

  /** Input partitions whose frames the open transaction holds. */
  private readonly txnPartitions = new Map<string, { topic: string; partition: number }>();

  private async begin(): Promise<void> {
    if (this.inTransaction) return;
    this.txnPartitions.clear();
    await cb((done) => this.producer!.beginTransaction(done));
    this.inTransaction = true;
    this.framesInBatch = 0;
    this.batchTimestamps = [];
    this.batchStarted = Date.now();
    this.scheduleCommit();
  }

  private produce(topic: string, value: Buffer, key: Buffer | string | null | undefined, headers: KafkaHeaders): void {
    try {
      this.producer!.produce(topic, null, value, key ?? null, Date.now(), undefined, headers as Kafka.MessageHeader[]);
    } catch (err) {
      // librdkafka refuses at once a topic whose metadata said the ACLs deny it
      throw deniedError(this.opts, err as Kafka.LibrdKafkaError, { topic, topicOps: 'WRITE and DESCRIBE' }) ?? err;
    }
  }

  /** The input message, unchanged, to the dead-letter topic inside the open transaction, with the reason. */
  private deadLetter(frame: KafkaFrame, code: string, message: string): void {
    const m = frame.message;
    this.produce(this.opts.dlqTopic, m.value ?? Buffer.alloc(0), m.key, deadLetterHeaders(m, code, message, this.opts.workerId));
    this.deadLettered++;
  }

  /**
   * A producer can turn fatal between commits (fenced by a newer one with its transactional id, or
   * its transaction timed out at the coordinator during an outage): librdkafka then refuses every
   * produce and begin. Like a commit that fails so, it is replaced and the source rewinds to the
   * committed offsets; the frame at hand is void and comes again. Call under the lock.
   */
  private async recovering(step: () => Promise<void>): Promise<void> {
    try {
      await step();
    } catch (err) {
      const e = err as Kafka.LibrdKafkaError & { isFatal?: boolean };
      if (!(e.isFatal || e.code === Kafka.CODES.ERRORS.ERR__FATAL || e.code === Kafka.CODES.ERRORS.ERR__FENCED)) throw err;
      process.stderr.write(`bgrm worker: the producer cannot go on (${e.message}); its open transaction is abandoned and its frames are read again\n`);
      await this.replaceProducer(e.message);
      await this.source.rewind();
    }
  }

  write(p: ProcessedFrame): Promise<void> {
    const frame = p.frame as KafkaFrame;
    return this.lock.run(() => this.recovering(async () => {
      if (this.broken) throw this.broken;
      if (this.denied) throw this.denied;
      if (frame.epoch !== this.source.epoch) return; // rewound: this frame comes again
      await this.begin();
      const m = frame.message;
      this.txnPartitions.set(`${m.topic}:${m.partition}`, { topic: m.topic, partition: m.partition });
      const now = Date.now();
      const headers: KafkaHeaders = [
        ...(m.headers ?? []),
        { 'bgrm-content': this.opts.content },
        { 'bgrm-model': this.opts.model },
        { 'bgrm-worker': this.opts.workerId },
        { 'bgrm-source': originOf(m) },
        { 'bgrm-processing-ms': p.result.timings.totalMs.toFixed(1) },
        { 'bgrm-e2e-ms': String(Math.max(0, now - frame.timestampMs)) },
      ];
      if (p.result.data.length > this.opts.maxMessageBytes) {
        this.deadLetter(frame, 'ERR_MESSAGE_TOO_LARGE', `output is ${p.result.data.length} bytes, over --max-message-bytes ${this.opts.maxMessageBytes}; use --format mask`);
        return;
      }
      this.produce(this.opts.outputTopic, p.result.data, m.key, headers);
      this.produced++;
      this.unsettled++;
      this.batchTimestamps.push(frame.timestampMs);
    }));
  }

  /** In source order after write (or for a failed frame): dead letter, mark done, maybe commit. */
  afterFrame(frame: KafkaFrame, error?: { code: string; message: string }): Promise<void> {
    return this.lock.run(() => this.recovering(async () => {
      if (this.broken) throw this.broken;
      if (frame.epoch !== this.source.epoch) return;
      await this.begin();
      this.txnPartitions.set(`${frame.message.topic}:${frame.message.partition}`, { topic: frame.message.topic, partition: frame.message.partition });
      if (!error && !frame.skip) this.unsettled = Math.max(0, this.unsettled - 1);
      if (error) {
        this.deadLetter(frame, error.code, error.message);
      }
      this.source.markDone(frame);
      this.framesInBatch++;
      if (this.framesInBatch >= (this.opts.batchFrames ?? BATCH_COMMIT_FRAMES)) await this.commitBatch();
    }));
  }

  /**
   * Sends the done offsets and commits. A retriable failure (a broker restarting, a timeout) is
   * retried, never turned into an abort: the commit may already be under way at the coordinator,
   * and aborting then reprocessing would duplicate it. A failure that needs an abort aborts, and the
   * source rewinds to the committed offsets. Call under the lock.
   */
  private async commitBatch(): Promise<void> {
    if (!this.inTransaction) return;
    const producer = this.producer!;
    // Never commit outputs of a partition that has moved to another worker meanwhile: its new owner
    // reads those frames again from the committed offset. Abort, and read what stays here again.
    if ([...this.txnPartitions.values()].some((p) => !this.source.owns(p.topic, p.partition))) {
      await this.abortBatch().catch((err: Error) => this.replaceProducer(err.message));
      await this.source.rewind();
      return;
    }
    try {
      const offsets = this.source.takeDone();
      if (offsets.length > 0) await this.retrying('send offsets', () => cb((done) => producer.sendOffsetsToTransaction(offsets, this.source.kafkaConsumer, 30000, done)));
      await this.retrying('commit', () => cb((done) => producer.commitTransaction(30000, done)));
      this.committedTransactions++;
      this.source.noteCommitted(offsets);
      this.opts.onCommitted?.(this.batchTimestamps);
    } catch (err) {
      const e = err as Kafka.LibrdKafkaError & { isFatal?: boolean; isTxnRequiresAbort?: boolean };
      // still retriable after two minutes: stop rather than guess (a restarted worker with the same
      // --worker-id completes or aborts this transaction when it starts)
      if (err instanceof BgrmError) throw err;
      // "failed delivery": the reports that say why (an ACL?) reach JavaScript after a poll; wait for them briefly
      if (/failed delivery/i.test(e.message) && !this.denied) {
        producer.poll();
        await new Promise((res) => setTimeout(res, 200));
      }
      if (this.denied) {
        await this.abortBatch().catch(() => undefined);
        throw this.denied;
      }
      process.stderr.write(`bgrm worker: transaction not committed (${e.message}); its frames are read again from the committed offsets\n`);
      if (e.isTxnRequiresAbort) await this.abortBatch().catch(() => this.replaceProducer(e.message));
      else await this.replaceProducer(e.message); // fatal or an unexpected state: settle it with a new producer
      await this.source.rewind();
    } finally {
      this.endBatch();
    }
  }

  /** Runs a transactional call again while it fails with a retriable error, for up to two minutes. */
  private async retrying<T>(what: string, call: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + 120000;
    for (;;) {
      try {
        return await call();
      } catch (err) {
        const e = err as Kafka.LibrdKafkaError & { isRetriable?: boolean };
        if (!e.isRetriable) throw err;
        if (Date.now() > deadline) throw new BgrmError('ERR_KAFKA', `transaction ${what} kept failing for 2 minutes: ${e.message}; is the broker up?`);
        await new Promise((res) => setTimeout(res, 500));
      }
    }
  }

  /** Aborts the open transaction, if any: none of its outputs or offsets become visible. Call under the lock. */
  private async abortBatch(): Promise<void> {
    if (this.inTransaction && this.producer) {
      const producer = this.producer;
      await this.retrying('abort', () => cb((done) => producer.abortTransaction(30000, done)));
      this.abortedTransactions++;
    }
    this.endBatch();
  }

  private endBatch(): void {
    this.inTransaction = false;
    this.framesInBatch = 0;
    this.unsettled = 0;
    this.batchTimestamps = [];
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  close(): Promise<void> {
    this.closing = true;
    if (this.timer) clearTimeout(this.timer);
    return this.lock.run(async () => {
      await this.commitBatch();
      const p = this.producer;
      this.producer = undefined;
      if (p) await new Promise<void>((resolve) => p.disconnect(() => resolve()));
    });
  }

  async abort(): Promise<void> {
    this.closing = true;
    if (this.timer) clearTimeout(this.timer);
    const p = this.producer;
    this.producer = undefined;
    if (!p) return;
    if (this.inTransaction) await cb((done) => p.abortTransaction(10000, done)).catch(() => undefined);
    await new Promise<void>((resolve) => p.disconnect(() => resolve()));
  }
}
