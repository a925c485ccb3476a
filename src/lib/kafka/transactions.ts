// TransactionalProducer: one Kafka producer with a transactional id, as the exactly-once unit uses
// it. initTransactions settles whatever an earlier producer of the same id left open; transactional
// calls that fail retriably are retried (for up to two minutes, never turned into an abort); a write
// the cluster's ACLs refuse is remembered and named; and when the producer reaches a state no abort
// can clear (fenced, timed out at the coordinator) it is replaced by a new one with the same id.
import * as Kafka from 'node-rdkafka';
import { BgrmError, errorMessage } from '../errors';
import { baseConfig, clientConfig, connectClient, type KafkaConnection } from './client';
import type { KafkaClients } from './clients';
import { deniedError } from './errors';
import type { KafkaHeaders } from './messages';

export interface TransactionalProducerOptions extends KafkaConnection {
  transactionalId: string;
  workerId: string;
  /** The topic the outputs go to (named when the ACLs refuse it). */
  outputTopic: string;
  maxMessageBytes: number;
  clients: KafkaClients;
}

/** node-rdkafka's callback style as a promise. */
export function cb<T = void>(fn: (done: (err: Kafka.LibrdKafkaError | null, v?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => fn((err, v) => (err ? reject(err) : resolve(v as T))));
}

/** A producer that no abort can bring back: it must be replaced. */
export function isFatal(err: unknown): boolean {
  const e = err as Kafka.LibrdKafkaError & { isFatal?: boolean };
  return !!e && (!!e.isFatal || e.code === Kafka.CODES.ERRORS.ERR__FATAL || e.code === Kafka.CODES.ERRORS.ERR__FENCED);
}

export class TransactionalProducer {
  private producer?: Kafka.Producer;
  /** A transaction is open on the producer. */
  open = false;
  /** The cluster refused a write (an ACL): no retry helps, the worker stops with this error. */
  denied?: BgrmError;
  private replacements: number[] = [];

  constructor(private readonly opts: TransactionalProducerOptions) {}

  private get wanted() {
    return { topic: this.opts.outputTopic, topicOps: 'WRITE and DESCRIBE' };
  }

  /** A transactional producer, connected; initTransactions settles what an earlier one of this id left open. */
  async connect(): Promise<void> {
    const producer = this.opts.clients.producer(
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
      if (err) this.denied ??= deniedError(this.opts, err, this.wanted);
    });
    await connectClient(producer, this.opts);
    producer.setPollInterval(50);
    await this.retrying('start', () => cb((done) => producer.initTransactions(30000, done))).catch(async (err: Kafka.LibrdKafkaError) => {
      // closed before the error goes up: a command that fails exits, and librdkafka's threads must be gone by then
      await new Promise<void>((resolve) => producer.disconnect(() => resolve()));
      throw (
        deniedError(this.opts, err, { transactionalId: this.opts.transactionalId, ...this.wanted }) ??
        new BgrmError('ERR_KAFKA', `cannot start transactions as ${this.opts.transactionalId}: ${errorMessage(err)}`)
      );
    });
    this.producer = producer;
    this.open = false;
  }

  private get live(): Kafka.Producer {
    if (!this.producer) throw new BgrmError('ERR_INVALID_STATE', 'the transactional producer is not connected');
    return this.producer;
  }

  async begin(): Promise<void> {
    await cb((done) => this.live.beginTransaction(done));
    this.open = true;
  }

  produce(topic: string, value: Buffer, key: Buffer | string | null | undefined, headers: KafkaHeaders): void {
    try {
      this.live.produce(topic, null, value, key ?? null, Date.now(), undefined, headers as Kafka.MessageHeader[]);
    } catch (err) {
      // librdkafka refuses at once a topic whose metadata said the ACLs deny it
      throw deniedError(this.opts, err as Kafka.LibrdKafkaError, { ...this.wanted, topic }) ?? err;
    }
  }

  /** The consumer's offsets into the open transaction, then the commit; each retried while retriable. A failure leaves it open. */
  async commit(offsets: Kafka.TopicPartitionOffset[], consumer: Kafka.KafkaConsumer): Promise<void> {
    const producer = this.live;
    try {
      if (offsets.length > 0) await this.retrying('send offsets', () => cb((done) => producer.sendOffsetsToTransaction(offsets, consumer, 30000, done)));
      await this.retrying('commit', () => cb((done) => producer.commitTransaction(30000, done)));
      this.open = false;
    } catch (err) {
      // "failed delivery": the reports that say why (an ACL?) reach JavaScript after a poll; wait for them briefly
      if (/failed delivery/i.test(errorMessage(err)) && !this.denied) {
        producer.poll();
        await new Promise((res) => setTimeout(res, 200));
      }
      throw err; // the transaction stays open: the caller aborts it or replaces the producer
    }
  }

  /** Aborts the open transaction, if any: none of its outputs or offsets become visible. */
  async abort(): Promise<boolean> {
    if (!this.open || !this.producer) return false;
    const producer = this.producer;
    try {
      await this.retrying('abort', () => cb((done) => producer.abortTransaction(30000, done)));
    } finally {
      this.open = false;
    }
    return true;
  }

  /**
   * The producer is in a state no abort can clear (fenced, the coordinator timed the transaction
   * out during a broker outage, a commit's outcome is unknown): a new producer with the same
   * transactional id. Its initTransactions completes or aborts the old transaction for good, so the
   * committed offsets tell exactly what was output; the caller rewinds to them.
   */
  async replace(reason: string): Promise<void> {
    const now = Date.now();
    this.replacements = this.replacements.filter((t) => now - t < 300000);
    this.replacements.push(now);
    if (this.replacements.length > 3) {
      throw new BgrmError('ERR_KAFKA_FATAL', `transactions keep failing (${reason}); is another worker using the same --worker-id?`);
    }
    const old = this.producer;
    this.producer = undefined;
    this.open = false;
    if (old) await Promise.race([new Promise<void>((resolve) => old.disconnect(() => resolve())), new Promise((res) => setTimeout(res, 5000))]);
    await this.connect();
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

  /** Leaves: an open transaction is aborted quietly when `abandon` (else it was committed before). */
  async disconnect(abandon = false): Promise<void> {
    const p = this.producer;
    this.producer = undefined;
    if (!p) return;
    if (abandon && this.open) await cb((done) => p.abortTransaction(10000, done)).catch(() => undefined);
    this.open = false;
    await new Promise<void>((resolve) => p.disconnect(() => resolve()));
  }
}
