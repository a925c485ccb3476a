// ExactlyOnce: consume -> process -> produce, exactly once, as one unit. It owns the group reader
// (its consumer, epoch and done offsets) and the transactional producer, and shows the pipeline a
// source (the frames) and a sink (the outputs). Outputs, dead letters and the consumer's offsets go
// into one Kafka transaction per batch, so read_committed readers see each frame once. When a
// transaction cannot commit (a rebalance moved partitions, the broker restarted), it is aborted,
// the reader rewinds to the committed offsets, and the frames are processed again.
// A reader sees a frame only once its transaction commits, so the batch follows the stream: a
// worker that has caught up commits every `liveCommitMs` (100 ms), one that is behind batches
// `batchFrames` frames or `batchMs` for throughput.
import type * as Kafka from 'node-rdkafka';
import { trace } from '../debug';
import { BgrmError } from '../errors';
import type { FrameSink, FrameSource, ProcessedFrame } from '../frame';
import { rdkafkaClients, type KafkaClients } from './clients';
import { GroupReader, tp, type GroupReaderOptions, type KafkaFrame } from './group-reader';
import { deadLetterHeaders, originOf, type KafkaHeaders } from './messages';
import { isFatal, TransactionalProducer } from './transactions';

export interface ExactlyOnceOptions extends GroupReaderOptions {
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
}

export const LIVE_COMMIT_MS = 100;
export const BATCH_COMMIT_MS = 1000;
export const BATCH_COMMIT_FRAMES = 16;

/** Serialises async sections (produce, commit, revocation) of the unit. */
class Lock {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.tail.then(fn, fn);
    this.tail = next.catch(() => undefined);
    return next;
  }
}

/** The unit's reader: partitions being revoked go through the unit (abort first, then give them up). */
class TransactionReader extends GroupReader {
  constructor(
    opts: GroupReaderOptions,
    private readonly onRevoke: (partitions: Kafka.Assignment[]) => Promise<void>,
  ) {
    super(opts);
  }
  protected override revoked(partitions: Kafka.Assignment[], consumer: Kafka.KafkaConsumer): void {
    this.onRevoke(partitions).catch(() => this.unassign(partitions, consumer));
  }
}

export class ExactlyOnce {
  private readonly reader: TransactionReader;
  private readonly producer: TransactionalProducer;
  private readonly clients: KafkaClients;
  private readonly lock = new Lock();
  private framesInBatch = 0;
  /** Frames whose output is produced but whose offset is not yet marked done: no commit in between. */
  private unsettled = 0;
  private batchStarted = 0;
  /** Capture timestamps of the frames output in the open transaction. */
  private batchTimestamps: number[] = [];
  /** Input partitions whose frames the open transaction holds. */
  private readonly txnPartitions = new Map<string, { topic: string; partition: number }>();
  private timer?: NodeJS.Timeout;
  private closing = false;
  /** A failure of a commit the timer started: the frames end with it, and so does close(). */
  private broken?: unknown;
  committedTransactions = 0;
  abortedTransactions = 0;
  deadLettered = 0;
  produced = 0;

  /** What the pipeline reads: the group's frames. */
  readonly source: FrameSource;
  /** What the pipeline writes to: outputs into the open transaction; close() commits the last one. */
  readonly sink: FrameSink;

  constructor(private readonly opts: ExactlyOnceOptions) {
    this.clients = opts.clients ?? rdkafkaClients;
    this.producer = new TransactionalProducer({ ...opts, clients: this.clients });
    // A partition moving to another worker: the open transaction may hold its outputs. Abort it
    // before the partition goes, then read what stays here again from the committed offsets.
    this.reader = new TransactionReader({ ...opts, clients: this.clients }, (partitions) =>
      this.lock.run(async () => {
        trace('kafka', () => `revocation of ${partitions.map(tp).join(' ')}: abort, give up, rewind`);
        await this.abortBatch().catch((err: Error) => this.replaceProducer(err.message));
        this.reader.unassign(partitions);
        await this.reader.rewind();
        trace('kafka', () => 'revocation settled');
      }),
    );
    this.source = { frames: () => this.reader.frames(), close: () => this.reader.close() };
    this.sink = { write: (p) => this.write(p), close: () => this.close(), abort: () => this.abort() };
  }

  /** Creates the topics, starts transactions and joins the group. */
  async open(): Promise<void> {
    await this.clients.ensureTopic(this.opts, this.opts.outputTopic, this.opts.partitions);
    await this.clients.ensureTopic(this.opts, this.opts.dlqTopic, 1);
    await this.producer.connect();
    await this.reader.connect();
  }

  /** The reader's epoch: frames of an older one were rewound and come again. */
  get epoch(): number {
    return this.reader.epoch;
  }

  lag(): Promise<Record<string, number>> {
    return this.reader.lag();
  }

  assignedPartitions(): number[] {
    return this.reader.assignedPartitions();
  }

  /** How long a transaction stays open now: short while the reader is caught up, longer while it is behind. */
  get commitIntervalMs(): number {
    return this.reader.caughtUp ? (this.opts.liveCommitMs ?? LIVE_COMMIT_MS) : (this.opts.batchMs ?? BATCH_COMMIT_MS);
  }

  /** Commits the open transaction when its time is up (also when no more frames arrive). */
  private scheduleCommit(): void {
    if (this.timer || this.closing) return;
    const due = this.batchStarted + this.commitIntervalMs;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (!this.producer.open || this.closing) return;
      if (Date.now() < this.batchStarted + this.commitIntervalMs) return this.scheduleCommit();
      this.lock
        .run(async () => {
          if (!this.producer.open) return;
          // a frame between its output and its offset: the commit waits for it
          if (this.unsettled > 0) return this.scheduleCommit();
          await this.commitBatch();
        })
        .catch((err: unknown) => {
          // no frame may come after this commit to report it: the reader ends the frames with it
          this.broken ??= err;
          this.reader.fail(err);
        });
    }, Math.max(5, due - Date.now()));
    this.timer.unref();
  }

  private async replaceProducer(reason: string): Promise<void> {
    this.endBatch();
    await this.producer.replace(reason);
    this.abortedTransactions++;
  }

  private async begin(frame: KafkaFrame): Promise<void> {
    const m = frame.message;
    if (!this.producer.open) {
      this.txnPartitions.clear();
      await this.producer.begin();
      this.framesInBatch = 0;
      this.batchTimestamps = [];
      this.batchStarted = Date.now();
      this.scheduleCommit();
    }
    this.txnPartitions.set(tp(m), { topic: m.topic, partition: m.partition });
  }

  /** The input message, unchanged, to the dead-letter topic inside the open transaction, with the reason. */
  private deadLetter(frame: KafkaFrame, code: string, message: string): void {
    const m = frame.message;
    this.producer.produce(this.opts.dlqTopic, m.value ?? Buffer.alloc(0), m.key, deadLetterHeaders(m, code, message, this.opts.workerId));
    this.deadLettered++;
  }

  /**
   * A producer can turn fatal between commits (fenced by a newer one with its transactional id, or
   * its transaction timed out at the coordinator during an outage): librdkafka then refuses every
   * produce and begin. Like a commit that fails so, it is replaced and the reader rewinds to the
   * committed offsets; the frame at hand is void and comes again. Call under the lock.
   */
  private async recovering(step: () => Promise<void>): Promise<void> {
    try {
      if (this.broken) throw this.broken;
      if (this.producer.denied) throw this.producer.denied;
      await step();
    } catch (err) {
      if (!isFatal(err)) throw err;
      process.stderr.write(`bgrm worker: the producer cannot go on (${(err as Error).message}); its open transaction is abandoned and its frames are read again\n`);
      await this.replaceProducer((err as Error).message);
      await this.reader.rewind();
    }
  }

  private write(p: ProcessedFrame): Promise<void> {
    const frame = p.frame as KafkaFrame;
    return this.lock.run(() =>
      this.recovering(async () => {
        if (frame.epoch !== this.reader.epoch) return; // rewound: this frame comes again
        await this.begin(frame);
        const m = frame.message;
        if (p.result.data.length > this.opts.maxMessageBytes) {
          this.deadLetter(frame, 'ERR_MESSAGE_TOO_LARGE', `output is ${p.result.data.length} bytes, over --max-message-bytes ${this.opts.maxMessageBytes}; use --format mask`);
          return;
        }
        const headers: KafkaHeaders = [
          ...(m.headers ?? []),
          { 'bgrm-content': this.opts.content },
          { 'bgrm-model': this.opts.model },
          { 'bgrm-worker': this.opts.workerId },
          { 'bgrm-source': originOf(m) },
          { 'bgrm-processing-ms': p.result.timings.totalMs.toFixed(1) },
          { 'bgrm-e2e-ms': String(Math.max(0, Date.now() - frame.timestampMs)) },
        ];
        this.producer.produce(this.opts.outputTopic, p.result.data, m.key, headers);
        this.produced++;
        this.unsettled++;
        this.batchTimestamps.push(frame.timestampMs);
      }),
    );
  }

  /** In source order after write (or for a failed frame): dead letter, mark done, maybe commit. */
  settle(frame: KafkaFrame, error?: { code: string; message: string }): Promise<void> {
    return this.lock.run(() =>
      this.recovering(async () => {
        if (frame.epoch !== this.reader.epoch) return;
        await this.begin(frame);
        if (!error && !frame.skip) this.unsettled = Math.max(0, this.unsettled - 1);
        if (error) this.deadLetter(frame, error.code, error.message);
        this.reader.markDone(frame);
        this.framesInBatch++;
        if (this.framesInBatch >= (this.opts.batchFrames ?? BATCH_COMMIT_FRAMES)) await this.commitBatch();
      }),
    );
  }

  /**
   * Sends the done offsets and commits. A retriable failure (a broker restarting, a timeout) is
   * retried, never turned into an abort: the commit may already be under way at the coordinator,
   * and aborting then reprocessing would duplicate it. A failure that needs an abort aborts, and the
   * reader rewinds to the committed offsets. Call under the lock.
   */
  private async commitBatch(): Promise<void> {
    if (!this.producer.open) return;
    // Never commit outputs of a partition that has moved to another worker meanwhile: its new owner
    // reads those frames again from the committed offset. Abort, and read what stays here again.
    if ([...this.txnPartitions.values()].some((p) => !this.reader.owns(p.topic, p.partition))) {
      await this.abortBatch().catch((err: Error) => this.replaceProducer(err.message));
      await this.reader.rewind();
      return;
    }
    try {
      const offsets = this.reader.takeDone();
      trace('kafka', () => `committing ${this.framesInBatch} frames, offsets ${offsets.map((o) => `${tp(o)}@${o.offset}`).join(' ') || '(none)'}`);
      await this.producer.commit(offsets, this.reader.kafkaConsumer);
      trace('kafka', () => 'committed');
      this.committedTransactions++;
      this.reader.noteCommitted(offsets);
      this.opts.onCommitted?.(this.batchTimestamps);
    } catch (err) {
      const e = err as Kafka.LibrdKafkaError & { isTxnRequiresAbort?: boolean };
      // still retriable after two minutes: stop rather than guess (a restarted worker with the same
      // --worker-id completes or aborts this transaction when it starts)
      if (err instanceof BgrmError) throw err;
      if (this.producer.denied) {
        await this.abortBatch().catch(() => undefined);
        throw this.producer.denied;
      }
      process.stderr.write(`bgrm worker: transaction not committed (${e.message}); its frames are read again from the committed offsets\n`);
      if (e.isTxnRequiresAbort) await this.abortBatch().catch(() => this.replaceProducer(e.message));
      else await this.replaceProducer(e.message); // fatal or an unexpected state: settle it with a new producer
      await this.reader.rewind();
    } finally {
      this.endBatch();
    }
  }

  /** Aborts the open transaction, if any. Call under the lock. */
  private async abortBatch(): Promise<void> {
    trace('kafka', () => `aborting (${this.producer.open ? 'a transaction is open' : 'none open'})`);
    try {
      if (await this.producer.abort()) this.abortedTransactions++;
    } finally {
      this.endBatch();
    }
  }

  private endBatch(): void {
    this.framesInBatch = 0;
    this.unsettled = 0;
    this.batchTimestamps = [];
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** No more commits from the timer: the unit is closing. */
  private stopTimer(): void {
    this.closing = true;
    if (this.timer) clearTimeout(this.timer);
  }

  /** The last transaction commits; a commit that failed earlier with no frame after it ends the run here. */
  private close(): Promise<void> {
    this.stopTimer();
    trace('kafka', () => 'closing: waiting for the work in progress');
    return this.lock.run(async () => {
      trace('kafka', () => 'closing: the last transaction commits');
      try {
        const failed = this.broken ?? this.producer.denied;
        if (failed) throw failed;
        await this.commitBatch();
      } finally {
        await this.producer.disconnect(true); // aborts what a failure left open; after a commit nothing is
        trace('kafka', () => 'closing: producer disconnected');
      }
    });
  }

  /** After a fatal error elsewhere: the open transaction is aborted, nothing of it becomes visible. */
  private async abort(): Promise<void> {
    this.stopTimer();
    await this.producer.disconnect(true);
  }
}
