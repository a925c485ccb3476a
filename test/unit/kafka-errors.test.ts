// The names of Kafka failures, from what librdkafka reports: refused credentials, each TLS cause,
// and each ACL refusal (by code, and by text where node-rdkafka passes code -1), with no secret.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { connectionError, deniedError } from '../../src/lib/kafka/errors';

const conn = {
  brokers: 'kafka.example:9093',
  settings: { 'security.protocol': 'SASL_SSL', 'sasl.mechanism': 'SCRAM-SHA-512', 'sasl.username': 'alice', 'sasl.password': 'hunter2-secret' },
};

describe('deniedError', () => {
  it('names a denied topic, group, transactional id and cluster operation, with the fix', () => {
    const topic = deniedError(conn, { code: 29, message: 'Broker: Topic authorization failed' }, { topic: 'frames', topicOps: 'READ and DESCRIBE' });
    expect(topic).toMatchObject({ code: 'ERR_KAFKA_TOPIC_DENIED' });
    expect(topic!.message).toMatch(/denies user 'alice' topic 'frames'.*READ and DESCRIBE/);
    expect(deniedError(conn, { code: 30, message: 'x' }, { group: 'workers' })).toMatchObject({ code: 'ERR_KAFKA_GROUP_DENIED', message: expect.stringContaining("consumer group 'workers'") });
    expect(deniedError(conn, { code: 53, message: 'x' }, { transactionalId: 'bgrm-g-w1' })).toMatchObject({
      code: 'ERR_KAFKA_TXN_DENIED',
      message: expect.stringContaining('--transactional-id-prefix'),
    });
    expect(deniedError(conn, { code: 31, message: 'Broker: Cluster authorization failed' }, {})).toMatchObject({ code: 'ERR_KAFKA_CLUSTER_DENIED' });
  });
  it("reads the refusal from the text when the code is lost (node-rdkafka's delivery reports)", () => {
    expect(deniedError(conn, { code: -1, message: 'topic authorization failed' }, { topic: 't' })?.code).toBe('ERR_KAFKA_TOPIC_DENIED');
    expect(deniedError(conn, { code: -1, message: 'Broker: Transactional Id authorization failed' }, {})?.code).toBe('ERR_KAFKA_TXN_DENIED');
  });
  it('leaves other errors alone', () => {
    expect(deniedError(conn, { code: 3, message: 'Broker: Unknown topic or partition' }, { topic: 't' })).toBeUndefined();
    expect(deniedError(conn, { code: -185, message: 'Local: Timed out' }, {})).toBeUndefined();
  });
  it('says who was refused: the SASL user, the client certificate, or nobody', () => {
    const mtls = { brokers: 'b:9094', settings: { 'security.protocol': 'ssl', 'ssl.certificate.location': '/c.pem' } };
    expect(deniedError(mtls, { code: 29 }, { topic: 't' })!.message).toContain("the client certificate's user");
    expect(deniedError({ brokers: 'b:9092' }, { code: 29 }, { topic: 't' })!.message).toContain('ANONYMOUS');
  });
});

describe('connectionError', () => {
  const line = (why: string) => `[thrd:sasl_ssl://kafka.example:9093/bootstrap]: sasl_ssl://kafka.example:9093/bootstrap: ${why}`;
  it('names refused credentials, without the password', () => {
    const e = connectionError(conn, '', [line('SASL authentication error: Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512 (hunter2-secret)')]);
    expect(e.code).toBe('ERR_KAFKA_AUTH');
    expect(e.message).toContain("user 'alice' (SCRAM-SHA-512)");
    expect(e.message).not.toContain('hunter2-secret');
  });
  it("names each TLS cause from OpenSSL's words", () => {
    const tls = (why: string) => connectionError(conn, '', [line(`SSL handshake failed: error:0A000086:SSL routines::certificate verify failed: ${why}`)]).code;
    expect(tls('certificate has expired')).toBe('ERR_KAFKA_TLS_EXPIRED');
    expect(tls('host mismatch (Hostname/IP does not match)')).toBe('ERR_KAFKA_TLS_NAME');
    expect(tls('unable to get local issuer certificate')).toBe('ERR_KAFKA_TLS_UNTRUSTED');
    expect(tls('broker certificate could not be verified')).toBe('ERR_KAFKA_TLS');
  });
  it("an alert from the broker: no client certificate, an expired one (read from its file), or one it does not trust", () => {
    const alert = [line('Receive failed: error:0A000416:SSL routines::sslv3 alert certificate unknown: SSL alert number 46')];
    expect(connectionError({ brokers: 'b:1', settings: { 'security.protocol': 'ssl' } }, '', alert).code).toBe('ERR_KAFKA_TLS_REFUSED');
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'bgrm-kafka-errors-'));
    try {
      const make = (name: string, days: string) => {
        const pem = path.join(tmp, `${name}.pem`);
        const key = path.join(tmp, `${name}.key`);
        const csr = path.join(tmp, `${name}.csr`);
        execFileSync('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${name}`, '-keyout', key, '-out', csr], { stdio: 'ignore' });
        execFileSync('openssl', ['x509', '-req', '-in', csr, '-signkey', key, '-days', days, '-out', pem], { stdio: 'ignore' }); // -days -1: expired yesterday
        return { brokers: 'b:1', settings: { 'security.protocol': 'ssl', 'ssl.certificate.location': pem } };
      };
      const expired = connectionError(make('old', '-1'), '', alert);
      expect(expired.code).toBe('ERR_KAFKA_TLS_EXPIRED');
      expect(expired.message).toMatch(/the client certificate .*old.pem is valid from .* not now/);
      expect(connectionError(make('current', '1'), '', alert).code).toBe('ERR_KAFKA_TLS_REFUSED');
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
  it('anything else is a broker that could not be reached', () => {
    expect(connectionError(conn, 'Local: Broker transport failure', [line('Connect to ipv4#10.0.0.1:9093 failed: Connection refused')]).code).toBe('ERR_BROKER_UNREACHABLE');
  });
});
