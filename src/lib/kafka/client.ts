// Kafka connections (node-rdkafka / librdkafka): broker lists, topic creation, producers, with
// bounded waits and errors that say what to do when the broker cannot be reached.
import * as Kafka from 'node-rdkafka';
import { BgrmError } from '../errors';
import { scrub, type KafkaSettings } from './settings';

export interface KafkaConnection {
  /** Comma-separated host:port list. */
  brokers: string;
  clientId?: string;
  /** How long to wait for the broker before giving up. */
  connectTimeoutMs?: number;
  /** The user's client settings (TLS, SASL, tuning; see settings.ts), applied last to every client. */
  settings?: KafkaSettings;
}

/** A client's configuration: bgrm's keys for this client, then the user's settings (bgrm's own keys are refused there). */
export function clientConfig<T extends object>(conn: KafkaConnection, own: T): T {
  return { ...own, ...(conn.settings ?? {}) };
}

export function parseBrokers(value: string): string {
  const list = value.split(',').map((s) => s.trim()).filter(Boolean);
  if (list.length === 0 || list.some((b) => !/^[A-Za-z0-9.\-_[\]:]+:\d{1,5}$/.test(b))) {
    throw new BgrmError('ERR_USAGE', `--brokers '${value}' is not a host:port list (for example 127.0.0.1:9092)`);
  }
  return list.join(',');
}

export function unreachable(conn: KafkaConnection, detail: string): BgrmError {
  return new BgrmError(
    'ERR_BROKER_UNREACHABLE',
    `cannot reach Kafka at ${conn.brokers} within ${Math.round((conn.connectTimeoutMs ?? 10000) / 1000)} s (${scrub(detail, conn.settings)}). ` +
      'Is the broker running? For a local one: scripts/kafka/kafka.sh start',
  );
}

/** Settings every bgrm client shares: bounded connection set-up, quick reconnects after a broker restart. */
export function baseConfig(conn: KafkaConnection): Kafka.GlobalConfig {
  return {
    'metadata.broker.list': conn.brokers,
    'client.id': conn.clientId ?? 'bgrm',
    'socket.connection.setup.timeout.ms': conn.connectTimeoutMs ?? 10000,
    'log.connection.close': false,
    // librdkafka backs off up to 10 s between reconnects by default; a restarted broker is back sooner
    'reconnect.backoff.ms': 100,
    'reconnect.backoff.max.ms': 1000,
  };
}

/** Creates the topic if it is missing; resolves 'exists' or 'created'. */
export function ensureTopic(conn: KafkaConnection, topic: string, partitions: number): Promise<'exists' | 'created'> {
  const timeout = conn.connectTimeoutMs ?? 10000;
  const admin = Kafka.AdminClient.create(clientConfig(conn, baseConfig(conn)));
  return new Promise<'exists' | 'created'>((resolve, reject) => {
    admin.createTopic({ topic, num_partitions: partitions, replication_factor: 1 }, timeout, (err) => {
      if (!err) return resolve('created');
      if (err.code === Kafka.CODES.ERRORS.ERR_TOPIC_ALREADY_EXISTS) return resolve('exists');
      if (err.code === Kafka.CODES.ERRORS.ERR__TIMED_OUT || err.code === Kafka.CODES.ERRORS.ERR__TRANSPORT) {
        return reject(unreachable(conn, err.message));
      }
      reject(new BgrmError('ERR_KAFKA', `cannot create topic ${topic}: ${scrub(err.message, conn.settings)}`));
    });
  }).finally(() => admin.disconnect());
}

/** An idempotent producer (acks=all) with delivery reports, connected. */
export function connectProducer(conn: KafkaConnection, extra: Kafka.ProducerGlobalConfig = {}): Promise<Kafka.Producer> {
  const producer = new Kafka.Producer(
    clientConfig(conn, {
      ...baseConfig(conn),
      dr_cb: true,
      'enable.idempotence': true,
      'message.max.bytes': 16 * 1024 * 1024,
      'queue.buffering.max.kbytes': 64 * 1024,
      'linger.ms': 5,
      ...extra,
    }),
    { 'request.required.acks': -1 }, // acks=all (idempotence requires it too)
  );
  return new Promise((resolve, reject) => {
    producer.connect({ timeout: conn.connectTimeoutMs ?? 10000 }, (err) => {
      if (err) {
        producer.disconnect();
        return reject(unreachable(conn, err.message));
      }
      producer.setPollInterval(20);
      resolve(producer);
    });
  });
}
