// Kafka errors a user will meet, named: a broker that is not there, refused credentials, a TLS
// handshake that failed (and why: an unknown CA, a certificate out of its dates or for another
// host, a client certificate the broker refuses), and requests the cluster's ACLs deny.
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as tls from 'node:tls';
import { BgrmError } from '../errors';
import type { KafkaConnection } from './client';
import { scrub } from './settings';

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
  // each reason without librdkafka's thread and broker prefix ("sasl_ssl://host:port/1: " would match SSL)
  const why = (l: string) => l.replace(/^\[thrd:[^\]]*\]:\s*/, '').replace(/^[a-z_]+:\/\/\S*?: /i, '');
  const lines = all.split('\n');
  if (lines.some((l) => /SASL authentication error|Authentication failed|SASL .*failed/i.test(why(l)))) {
    return new BgrmError(
      'ERR_KAFKA_AUTH',
      `Kafka at ${conn.brokers} refused the credentials of user '${s['sasl.username'] ?? '?'}' (${s['sasl.mechanism'] ?? 'SASL'}): ` +
        'check sasl.username and its password (BGRM_KAFKA_SASL_PASSWORD or the --kafka-config file), and that the user exists for this mechanism',
    );
  }
  const tls = lines.find((l) => /SSL|certificate|handshake/i.test(why(l)));
  if (tls) return tlsError(conn, tls);
  return unreachable(conn, detail);
}

/**
 * A failed TLS handshake, by its cause. Each code starts with ERR_KAFKA_TLS. OpenSSL's verify
 * result names what the client found wrong with the broker's certificate; an alert from the broker
 * means it refused the client certificate, and the certificate file then says whether it expired.
 */
function tlsError(conn: KafkaConnection, line: string): BgrmError {
  const s = conn.settings ?? {};
  const why = line.replace(/^.*?(SSL handshake failed: |: )(?=error:|SSL|[A-Za-z])/, '').slice(0, 200);
  const at = `TLS with Kafka at ${conn.brokers} failed (${why})`;
  if (/certificate has expired|certificate is not yet valid/i.test(line)) {
    return new BgrmError('ERR_KAFKA_TLS_EXPIRED', `${at}: the broker's certificate is outside its dates; its operator renews it (check this machine's clock too)`);
  }
  if (/hostname mismatch|IP address mismatch|host.*mismatch/i.test(line)) {
    return new BgrmError(
      'ERR_KAFKA_TLS_NAME',
      `${at}: the broker's certificate is for another host name; connect by a name the certificate lists, or have it reissued with this one (ssl.endpoint.identification.algorithm=none turns the check off, at your risk)`,
    );
  }
  if (/unable to get local issuer|self[- ]signed certificate|unable to verify the first certificate|certificate signature failure/i.test(line)) {
    return new BgrmError(
      'ERR_KAFKA_TLS_UNTRUSTED',
      `${at}: the broker's certificate is not signed by a CA this client trusts; set ssl.ca.location (--ssl-ca) to the CA file of the cluster`,
    );
  }
  if (/alert (certificate|bad certificate|unknown ca|handshake failure)|certificate required/i.test(line)) {
    const file = s['ssl.certificate.location'];
    if (!file) {
      return new BgrmError('ERR_KAFKA_TLS_REFUSED', `${at}: the broker asks for a client certificate; set ssl.certificate.location and ssl.key.location (--ssl-cert, --ssl-key)`);
    }
    const dates = certificateDates(file);
    if (dates && (Date.now() > dates.to.getTime() || Date.now() < dates.from.getTime())) {
      return new BgrmError(
        'ERR_KAFKA_TLS_EXPIRED',
        `${at}: the client certificate ${file} is valid from ${dates.from.toISOString()} to ${dates.to.toISOString()}, not now; renew it`,
      );
    }
    return new BgrmError(
      'ERR_KAFKA_TLS_REFUSED',
      `${at}: the broker refused the client certificate ${file}; it must be signed by a CA the broker trusts (ssl.truststore on the broker) and match ssl.key.location`,
    );
  }
  return new BgrmError(
    'ERR_KAFKA_TLS',
    `${at}: check ssl.ca.location (the CA that signed the broker's certificate), that the broker's certificate names the host you connect to and is within its dates, ` +
      'and for mutual TLS ssl.certificate.location and ssl.key.location',
  );
}

/**
 * librdkafka reports a broker certificate it rejects as "certificate verify failed" without
 * OpenSSL's reason. bgrm then looks at the certificate itself (a TLS handshake from Node with the
 * same CA file, within 3 s) and names the reason: expired, another host's, or an unknown CA.
 */
export async function explainTls(conn: KafkaConnection, err: BgrmError, reasons: string[]): Promise<BgrmError> {
  if (err.code !== 'ERR_KAFKA_TLS') return err;
  const line = reasons.find((l) => /certificate verify failed/i.test(l));
  const addr = line && /\b(?:sasl_)?ssl:\/\/([^/\s]+):(\d+)\//i.exec(line);
  if (!line || !addr) return err;
  const reason = await inspectCertificate(addr[1], Number(addr[2]), conn.settings?.['ssl.ca.location']).catch(() => undefined);
  return reason ? tlsError(conn, `${scrub(line, conn.settings)}: ${reason}`) : err;
}

/** Why a TLS client with this CA file would reject the server's certificate, in OpenSSL's words; undefined when it would not. */
function inspectCertificate(host: string, port: number, caFile?: string): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host, port, servername: /^[\d.]+$|:/.test(host) ? undefined : host, ca: caFile ? readFileSync(caFile) : undefined, rejectUnauthorized: false, timeout: 3000 }, () => {
      const cert = socket.getPeerCertificate();
      const code = socket.authorizationError ? String(socket.authorizationError) : undefined; // OpenSSL's name, as a string
      socket.destroy();
      if (code === 'CERT_HAS_EXPIRED') return resolve(`certificate has expired (valid until ${cert.valid_to})`);
      if (code === 'CERT_NOT_YET_VALID') return resolve(`certificate is not yet valid (valid from ${cert.valid_from})`);
      if (code && code !== 'ERR_TLS_CERT_ALTNAME_INVALID') return resolve(`unable to get local issuer certificate (${code})`);
      const mismatch = tls.checkServerIdentity(host, cert);
      resolve(mismatch ? `host mismatch (${mismatch.message})` : undefined);
    });
    socket.on('timeout', () => (socket.destroy(), resolve(undefined)));
    socket.on('error', reject);
  });
}

/** The validity of the first certificate in a PEM file, or undefined when it cannot be read. */
function certificateDates(file: string): { from: Date; to: Date } | undefined {
  try {
    const cert = new X509Certificate(readFileSync(file));
    return { from: new Date(cert.validFrom), to: new Date(cert.validTo) };
  } catch {
    return undefined;
  }
}

/** Kafka's protocol codes for a request the ACLs refused (as librdkafka and node-rdkafka number them). */
const AUTHORIZATION_FAILED = {
  ERR_TOPIC_AUTHORIZATION_FAILED: 29,
  ERR_GROUP_AUTHORIZATION_FAILED: 30,
  ERR_CLUSTER_AUTHORIZATION_FAILED: 31,
  ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED: 53,
} as const;

/** What bgrm asked of a resource the cluster's ACLs refused, for the fix in the message. */
export interface Wanted {
  topic?: string;
  group?: string;
  transactionalId?: string;
  /** The operations bgrm needs on the topic, as an operator grants them ("WRITE and DESCRIBE"). */
  topicOps?: string;
}

/** Who the broker saw: the SASL user, else (mutual TLS) the client certificate's subject. */
function principal(conn: KafkaConnection): string {
  const s = conn.settings ?? {};
  if (s['sasl.username']) return `user '${s['sasl.username']}'`;
  if (s['ssl.certificate.location']) return "the client certificate's user";
  return 'this client (no user: ANONYMOUS)';
}

/**
 * The named error for a request the cluster's ACLs refused (librdkafka's *_AUTHORIZATION_FAILED
 * codes), or undefined for any other error. Each says which resource, who was refused and what an
 * operator grants to fix it.
 */
export function deniedError(conn: KafkaConnection, err: { code?: number; message?: string }, wanted: Wanted): BgrmError | undefined {
  const E = AUTHORIZATION_FAILED;
  const who = principal(conn);
  // node-rdkafka's delivery reports carry librdkafka's text but code -1: the text names the refusal then
  const byText: [RegExp, number][] = [
    [/topic authorization failed/i, E.ERR_TOPIC_AUTHORIZATION_FAILED],
    [/group authorization failed/i, E.ERR_GROUP_AUTHORIZATION_FAILED],
    [/transactional id authorization failed/i, E.ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED],
    [/cluster authorization failed/i, E.ERR_CLUSTER_AUTHORIZATION_FAILED],
  ];
  const code = byText.some(([, c]) => c === err.code) ? err.code : byText.find(([re]) => re.test(err.message ?? ''))?.[1];
  switch (code) {
    case E.ERR_TOPIC_AUTHORIZATION_FAILED:
      return new BgrmError(
        'ERR_KAFKA_TOPIC_DENIED',
        `Kafka at ${conn.brokers} denies ${who} topic '${wanted.topic ?? '?'}' (an ACL): ask the cluster's operator for ` +
          `${wanted.topicOps ?? 'READ and DESCRIBE'} on it (kafka-acls --add --allow-principal User:NAME --topic ...), or use a topic you are granted`,
      );
    case E.ERR_GROUP_AUTHORIZATION_FAILED:
      return new BgrmError(
        'ERR_KAFKA_GROUP_DENIED',
        `Kafka at ${conn.brokers} denies ${who} consumer group '${wanted.group ?? '?'}' (an ACL): ask the cluster's operator for READ on the group ` +
          '(kafka-acls --add --allow-principal User:NAME --operation Read --group ...), or pass a --group you are granted',
      );
    case E.ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
      return new BgrmError(
        'ERR_KAFKA_TXN_DENIED',
        `Kafka at ${conn.brokers} denies ${who} transactional id '${wanted.transactionalId ?? '?'}' (an ACL), which the exactly-once output needs: ` +
          'ask the cluster\'s operator for WRITE and DESCRIBE on transactional ids with a prefix (kafka-acls --add --allow-principal User:NAME ' +
          '--transactional-id PREFIX --resource-pattern-type prefixed), and pass that prefix as --transactional-id-prefix',
      );
    case E.ERR_CLUSTER_AUTHORIZATION_FAILED:
      return new BgrmError(
        'ERR_KAFKA_CLUSTER_DENIED',
        `Kafka at ${conn.brokers} denies ${who} a cluster operation (an ACL; ${scrub(err.message ?? '', conn.settings)}): ask the cluster's operator for it, ` +
          'or create the topics beforehand',
      );
    default:
      return undefined;
  }
}
