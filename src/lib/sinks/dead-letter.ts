// DeadLetterSink: frames that could not be processed go, unchanged, to a dead-letter topic with the
// reason in headers, so that nothing is dropped without trace.
import type * as Kafka from 'node-rdkafka';
import { BgrmError } from '../errors';
import { connectProducer, ensureTopic, type KafkaConnection } from '../kafka/client';
import { deniedError } from '../kafka/errors';
import { deadLetterHeaders, type IncomingMessage } from '../kafka/messages';

export class DeadLetterSink {
  private producer?: Kafka.Producer;
  private readonly waiting = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  private seq = 0;
  sent = 0;

  constructor(
    private readonly conn: KafkaConnection,
    readonly topic: string,
    private readonly partitions = 1,
  ) {}

  async open(): Promise<void> {
    await ensureTopic(this.conn, this.topic, this.partitions);
    this.producer = await connectProducer(this.conn);
    this.producer.on('delivery-report', (err, report) => {
      const w = this.waiting.get(report?.opaque as number);
      if (!w) return;
      this.waiting.delete(report.opaque as number);
      if (err) w.reject(deniedError(this.conn, err, { topic: this.topic, topicOps: 'WRITE and DESCRIBE' }) ?? new BgrmError('ERR_DLQ', `dead-letter write failed: ${err.message}`));
      else w.resolve();
    });
  }

  /** Resolves once the broker has confirmed the dead letter. */
  send(message: IncomingMessage, code: string, reason: string, workerId: string): Promise<void> {
    const id = ++this.seq;
    const headers = deadLetterHeaders(message, code, reason, workerId);
    return new Promise<void>((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      const key = message.key === null || message.key === undefined ? null : Buffer.isBuffer(message.key) ? message.key : Buffer.from(message.key);
      this.producer!.produce(this.topic, null, message.value ?? Buffer.alloc(0), key, Date.now(), id, headers as Kafka.MessageHeader[]);
    }).then(() => {
      this.sent++;
    });
  }

  async close(): Promise<void> {
    if (!this.producer) return;
    const p = this.producer;
    await new Promise<void>((resolve) => p.flush(30000, () => resolve()));
    await new Promise<void>((resolve) => p.disconnect(() => resolve()));
    this.producer = undefined;
  }
}
