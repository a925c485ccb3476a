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

/**
 * The error for a client that could not connect: librdkafka's own reasons, logged while it tried
 * (`reasons`), tell refused credentials and failed TLS apart from a broker that is not there.
 */
export function connectionError(conn: KafkaConnection, detail: string, reasons: string[]): BgrmError {
  const all = scrub(reasons.join('\n'), conn.settings);
  const s = conn.settings ?? {};
  if (/SASL authentication error|Authentication failed|SASL .*failed/i.test(all)) {
    return new BgrmError(
      'ERR_KAFKA_AUTH',
      `Kafka at ${conn.brokers} refused the credentials of user '${s['sasl.username'] ?? '?'}' (${s['sasl.mechanism'] ?? 'SASL'}): ` +
        'check sasl.username and its password (BGRM_KAFKA_SASL_PASSWORD or the --kafka-config file), and that the user exists for this mechanism',
    );
  }
  const tls = all.split('\n').find((l) => /SSL|certificate|handshake/i.test(l));
  if (tls) {
    const why = tls.replace(/^.*?(SSL handshake failed: |: )(?=error:|SSL|[A-Za-z])/, '').slice(0, 200);
    return new BgrmError(
      'ERR_KAFKA_TLS',
      `TLS with Kafka at ${conn.brokers} failed (${why}): check ssl.ca.location (the CA that signed the broker's certificate), ` +
        "that the broker's certificate names the host you connect to and is within its dates, and for mutual TLS ssl.certificate.location and ssl.key.location",
    );
  }
  return unreachable(conn, detail);
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
 * Connects a producer or consumer within the connect timeout; a failure is named by connectionError,
 * at once when librdkafka logs refused credentials or a failed TLS handshake (it would retry until
 * the timeout).
 */
export function connectClient(client: Kafka.Client<Kafka.KafkaClientEvents>, conn: KafkaConnection): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    const { reasons, stop } = collectReasons(client, () => {
      const named = connectionError(conn, '', reasons);
      if (named.code !== 'ERR_BROKER_UNREACHABLE' && !settled) {
        settled = true;
        stop();
        reject(named);
      }
    });
    client.connect({ timeout: conn.connectTimeoutMs ?? 10000 }, (err) => {
      stop();
      if (settled) return;
      settled = true;
      if (err) reject(connectionError(conn, err.message, reasons));
      else resolve();
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

/** Creates the topic if it is missing; resolves 'exists' or 'created'. */
export function ensureTopic(conn: KafkaConnection, topic: string, partitions: number): Promise<'exists' | 'created'> {
  const timeout = conn.connectTimeoutMs ?? 10000;
  const admin = Kafka.AdminClient.create(clientConfig(conn, baseConfig(conn)));
  // The admin client reports only a timeout: with TLS or SASL configured, a producer connecting
  // beside it names refused credentials or a failed handshake as soon as librdkafka logs them.
  const named = secured(conn) ? probe(conn).then((err) => (err ? Promise.reject(err) : new Promise<never>(() => undefined))) : new Promise<never>(() => undefined);
  const created = new Promise<'exists' | 'created'>((resolve, reject) => {
    admin.createTopic({ topic, num_partitions: partitions, replication_factor: 1 }, timeout, (err) => {
      if (!err) return resolve('created');
      if (err.code === Kafka.CODES.ERRORS.ERR_TOPIC_ALREADY_EXISTS) return resolve('exists');
      if (err.code === Kafka.CODES.ERRORS.ERR__TIMED_OUT || err.code === Kafka.CODES.ERRORS.ERR__TRANSPORT) {
        return reject(unreachable(conn, err.message));
      }
      reject(new BgrmError('ERR_KAFKA', `cannot create topic ${topic}: ${scrub(err.message, conn.settings)}`));
    });
  });
  return Promise.race([created, named]).finally(() => admin.disconnect());
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
