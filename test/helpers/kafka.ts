// A real broker for tests (scripts/kafka/kafka.sh, its own port) and a reader of whole topics.
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import * as Kafka from 'node-rdkafka';
import type { IncomingMessage, KafkaHeaders } from '../../src/lib/kafka/messages';
import { root } from './testdata';

const script = path.join(root, 'scripts', 'kafka', 'kafka.sh');

/** Each test file runs its own broker on BGRM_TEST_KAFKA_PORT (default 19092) + an offset of its own. */
export function testPort(offset: number): number {
  return Number(process.env.BGRM_TEST_KAFKA_PORT ?? 19092) + offset;
}

export function startBroker(port: number): string {
  return execFileSync('bash', [script, 'start', '--port', String(port)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
}

/**
 * A broker as production runs them (kafka.sh start --secure): SASL_SSL with SCRAM on `port`, mutual
 * TLS on port + 2. Returns the folder of its CA, client certificate, password and client settings.
 */
export function startSecureBroker(port: number): { brokers: string; tls: string } {
  const brokers = execFileSync('bash', [script, 'start', '--port', String(port), '--secure'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  return { brokers, tls: path.join(root, '.cache', 'kafka', `run-${port}`, 'tls') };
}

/** Starts the broker of `port` again on the data that stopBroker(port, true) kept. */
export function startBrokerAgain(port: number): string {
  return execFileSync('bash', [script, 'start', '--port', String(port), '--keep-data'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
}

export function stopBroker(port: number, keepData = false): void {
  execFileSync('bash', [script, 'stop', '--port', String(port), ...(keepData ? ['--keep-data'] : [])], { stdio: 'inherit' });
}

/**
 * Reads every committed message of a topic from the beginning until `count` arrived (or `until`
 * holds for those read so far) or `timeoutMs` passed.
 */
export async function readTopic(
  brokers: string,
  topic: string,
  count: number,
  timeoutMs = 30000,
  until: (msgs: IncomingMessage[]) => boolean = () => false,
  settings: Record<string, string> = {},
): Promise<IncomingMessage[]> {
  const consumer = new Kafka.KafkaConsumer(
    {
      'group.id': `test-${topic}-${Date.now()}`,
      'metadata.broker.list': brokers,
      'enable.auto.commit': false,
      'isolation.level': 'read_committed',
      'topic.metadata.refresh.interval.ms': 1000,
      ...settings,
    },
    { 'auto.offset.reset': 'earliest' },
  );
  await new Promise<void>((resolve, reject) => consumer.connect({ timeout: 10000 }, (err) => (err ? reject(new Error(err.message)) : resolve())));
  consumer.setDefaultConsumeTimeout(200);
  consumer.subscribe([topic]);
  const out: IncomingMessage[] = [];
  const deadline = Date.now() + timeoutMs;
  // Batch (non-flowing) reads: disconnecting a flowing consumer with messages in flight can crash it.
  while (out.length < count && !until(out) && Date.now() < deadline) {
    const batch = await new Promise<Kafka.Message[]>((resolve, reject) =>
      consumer.consume(16, (err, m) => {
        // a topic that its producer has not created yet is not an error for a reader that waits
        if (err && err.code === Kafka.CODES.ERRORS.ERR_UNKNOWN_TOPIC_OR_PART) return setTimeout(() => resolve([]), 200);
        return err ? reject(new Error(err.message)) : resolve(m);
      }),
    );
    for (const m of batch) {
      out.push({ topic: m.topic, partition: m.partition, offset: m.offset, key: m.key, value: m.value ?? null, headers: m.headers as KafkaHeaders, timestamp: m.timestamp });
    }
  }
  await new Promise<void>((resolve) => consumer.disconnect(() => resolve()));
  return out;
}

/** Sends one message as-is (creating a 1-partition topic if missing); resolves when the broker confirmed it. */
export async function produceRaw(brokers: string, topic: string, key: string, value: Buffer, headers: KafkaHeaders = []): Promise<void> {
  const { connectProducer } = await import('../../src/lib/kafka/client');
  const { ensureTopic } = await import('../../src/lib/kafka/client');
  await ensureTopic({ brokers }, topic, 1);
  const producer = await connectProducer({ brokers });
  try {
    await new Promise<void>((resolve, reject) => {
      producer.on('delivery-report', (err) => (err ? reject(new Error(err.message)) : resolve()));
      producer.produce(topic, null, value, key, Date.now(), undefined, headers as Kafka.MessageHeader[]);
    });
  } finally {
    await new Promise<void>((resolve) => producer.disconnect(() => resolve()));
  }
}
