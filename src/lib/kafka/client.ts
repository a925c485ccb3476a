// Kafka connections (node-rdkafka / librdkafka): broker lists, topic creation, producers, with
// bounded waits and errors that say what to do when the broker cannot be reached.
import * as Kafka from 'node-rdkafka';
import { BgrmError } from '../errors';
import { connectionError, deniedError, explainTls, unreachable } from './errors';
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

/**
 * The errors librdkafka logs while a client connects (it logs them even without debug). Errors only
 * (severity 3 and below): a warning must not end a connection that may still succeed.
 */
export function collectReasons(client: Kafka.Client<Kafka.KafkaClientEvents>, onReason?: () => void): { reasons: string[]; stop: () => void } {
  const reasons: string[] = [];
  const onLog = (log: { severity: number; message: string }) => {
    if (log.severity > 3 || reasons.length >= 20) return;
    reasons.push(log.message);
    onReason?.();
  };
  client.on('event.log', onLog);
  return { reasons, stop: () => client.removeListener('event.log', onLog) };
}

/**
 * Connects a producer or consumer within the connect timeout. A failure is named by connectionError,
 * from librdkafka's log when it says refused credentials or a failed TLS handshake (it would retry
 * until the timeout). The promise settles only once node-rdkafka's connect has returned: on a
 * failure it has destroyed the client by then, so no librdkafka thread is left handshaking while the
 * process exits (exit() tearing OpenSSL down under such a thread ended a run with a signal).
 */
export function connectClient(client: Kafka.Client<Kafka.KafkaClientEvents>, conn: KafkaConnection): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let named: BgrmError | undefined;
    const fail = (err: BgrmError) => void explainTls(conn, err, reasons).then(reject);
    const { reasons, stop } = collectReasons(client, () => {
      const why = connectionError(conn, '', reasons);
      if (why.code !== 'ERR_BROKER_UNREACHABLE' && !named) {
        named = why;
        stop();
      }
    });
    client.connect({ timeout: conn.connectTimeoutMs ?? 10000 }, (err) => {
      stop();
      // connected after all (another broker answered): what was logged did not stop it
      if (!err) resolve();
      else fail(named ?? connectionError(conn, err.message, reasons));
    });
  });
}

/** Does the user's configuration use TLS or SASL? */
function secured(conn: KafkaConnection): boolean {
  const p = (conn.settings?.['security.protocol'] ?? 'plaintext').toLowerCase();
  return p !== 'plaintext';
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

/**
 * Creates the topic if it is missing; resolves 'exists' or 'created'. `topicOps` names what the
 * caller will do with it, for the error when the cluster's ACLs refuse the topic.
 */
export async function ensureTopic(conn: KafkaConnection, topic: string, partitions: number, topicOps = 'WRITE and DESCRIBE'): Promise<'exists' | 'created'> {
  const timeout = conn.connectTimeoutMs ?? 10000;
  // The admin client reports only a timeout, and a process cannot exit while its request is open:
  // with TLS or SASL configured, a producer connects first and names refused credentials or a
  // failed handshake as soon as librdkafka logs them.
  if (secured(conn)) {
    const named = await probe(conn);
    if (named) throw named;
  }
  const admin = Kafka.AdminClient.create(clientConfig(conn, baseConfig(conn)));
  return new Promise<'exists' | 'created'>((resolve, reject) => {
    admin.createTopic({ topic, num_partitions: partitions, replication_factor: 1 }, timeout, (err) => {
      if (!err) return resolve('created');
      if (err.code === Kafka.CODES.ERRORS.ERR_TOPIC_ALREADY_EXISTS) return resolve('exists');
      if (err.code === Kafka.CODES.ERRORS.ERR__TIMED_OUT || err.code === Kafka.CODES.ERRORS.ERR__TRANSPORT) {
        return reject(unreachable(conn, err.message));
      }
      const denied = deniedError(conn, err, { topic, topicOps: `${topicOps} (CREATE too, or create it beforehand)` });
      reject(denied ?? new BgrmError('ERR_KAFKA', `cannot create topic ${topic}: ${scrub(err.message, conn.settings)}`));
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
  return connectClient(producer, conn).then(
    () => {
      producer.setPollInterval(20);
      return producer;
    },
    (err: unknown) => {
      quietDisconnect(producer);
      throw err;
    },
  );
}

/** Why a secured connection fails, if librdkafka says so within the connect timeout; undefined when it connects or says nothing. */
async function probe(conn: KafkaConnection): Promise<BgrmError | undefined> {
  const producer = new Kafka.Producer(clientConfig(conn, baseConfig({ ...conn, clientId: 'bgrm-probe' })));
  try {
    await connectClient(producer, conn);
    return undefined;
  } catch (err) {
    return err instanceof BgrmError && err.code !== 'ERR_BROKER_UNREACHABLE' ? err : undefined;
  } finally {
    quietDisconnect(producer);
  }
}

/** Disconnects a client that may never have connected (node-rdkafka's producer throws then). */
export function quietDisconnect(client: Kafka.Client<Kafka.KafkaClientEvents>): void {
  try {
    client.disconnect();
  } catch {
    // not connected: nothing to close
  }
}
