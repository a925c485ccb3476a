// Kafka as production runs it: the project's broker with SASL_SSL (SCRAM-SHA-512 over TLS) and a
// mutual-TLS listener, certificates made at start. capture -> worker (folder, exactly-once topic) ->
// replay -> serve's feed over SCRAM/TLS, every frame once; mutual TLS; a wrong password, an unknown
// CA, expired certificates, a certificate for another host and the broker's ACLs (a denied topic,
// group and transactional id) named within the connect timeout; the password in no output or `ps`.
import { execFileSync } from 'node:child_process';
import { existsSync, promises as fs, readFileSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as tlsNet from 'node:tls';
import * as path from 'node:path';
import { decodeFrameMessage } from '../../src/lib/kafka/messages';
import { runCli } from '../helpers/cli';
import { readTopic, startSecureBroker, stopBroker, testPort } from '../helpers/kafka';
import { request, startServe } from '../helpers/serve';
import { describeWith, hasTestdata, testdata } from '../helpers/testdata';

const PORT = testPort(800);

describeWith('../shared/testdata/video', hasTestdata('video'))('Kafka over SCRAM/TLS and mutual TLS (real broker)', () => {
  let tls: string;
  let password: string;
  let tmp: string;
  const video = path.join(testdata, 'video', 'breakdance.mp4');
  let printed = '';
  const run = async (args: string[], env: NodeJS.ProcessEnv = { BGRM_KAFKA_SASL_PASSWORD: password }) => {
    const r = await runCli(args, { env });
    printed += r.stdout.toString() + r.stderr;
    // the error as one line (the CLI wraps it at the terminal width)
    return { ...r, said: r.stderr.replace(/\s*›\s*/g, ' ') };
  };
  beforeAll(async () => {
    tls = startSecureBroker(PORT).tls;
    password = readFileSync(path.join(tls, 'password'), 'utf8').trim();
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'bgrm-secure-'));
  }, 120000);
  afterAll(async () => {
    stopBroker(PORT);
    await fs.rm(tmp, { recursive: true, force: true });
  });

  it('SCRAM over TLS: capture -> worker (folder and exactly-once topic) -> replay -> serve, every frame once; no secret printed', async () => {
    const config = path.join(tls, 'client.properties');
    expect(readFileSync(config, 'utf8')).not.toContain(password); // the password comes from the environment
    const cap = await run(['capture', '--video', video, '--camera-id', 'sec', '--topic', 'sec-in', '--fps', '0', '--max-frames', '6', '--kafka-config', config, '--json']);
    expect(cap.code).toBe(0);
    expect(JSON.parse(cap.stdout.toString())).toMatchObject({ sent: 6, failed: 0 });

    const serve = await startServe(['--kafka-config', config, '--topic', 'sec-in', '--output-topic', 'sec-out', '--connect-timeout', '20'], { BGRM_KAFKA_SASL_PASSWORD: password });
    try {
      const folder = path.join(tmp, 'folder');
      const w1 = await run(['process', '--kafka-config', config, '--topic', 'sec-in', '--group', 'sec-files', '-o', folder, '--idle-exit', '5', '--worker-id', 'sec-w1', '--json']);
      expect(w1.code).toBe(0);
      expect((await fs.readdir(path.join(folder, 'sec'))).sort()).toHaveLength(6);
      const running = run(['process', '--kafka-config', config, '--topic', 'sec-in', '--group', 'sec-topic', '--output-topic', 'sec-out', '--idle-exit', '8', '--worker-id', 'sec-w2', '--json']);
      // serve's dashboard feed reads the worker's status records over the same kind of connection
      let state: { kafka: { connected: boolean; error?: string }; workers: { workerId: string }[] } | undefined;
      for (let i = 0; i < 60 && !state?.workers.some((w) => w.workerId === 'sec-w2'); i++) {
        await new Promise((r) => setTimeout(r, 500));
        state = JSON.parse((await request(`${serve.url}/v1/state`)).body.toString());
      }
      expect(JSON.stringify(state?.kafka)).toContain('"connected":true');
      expect(state?.workers.map((w) => w.workerId)).toContain('sec-w2');
      // what `ps` shows of every process here while the worker runs: the password is in none of them
      const ps = execFileSync('ps', ['-eww', '-o', 'args'], { encoding: 'utf8' });
      expect(ps).toContain('sec-w2');
      expect(ps).not.toContain(password);
      const w2 = await running;
      expect(w2.code).toBe(0);
      const settings = { 'security.protocol': 'SASL_SSL', 'sasl.mechanism': 'SCRAM-SHA-512', 'sasl.username': 'bgrm', 'sasl.password': password, 'ssl.ca.location': path.join(tls, 'ca.pem') };
      const out = await readTopic(`127.0.0.1:${PORT}`, 'sec-out', 6, 30000, () => false, settings);
      expect(new Set(out.map((m) => `${decodeFrameMessage(m).cameraId}/${decodeFrameMessage(m).frameNumber}`)).size).toBe(6);
      expect(out).toHaveLength(6);
      const replayed = await run(['replay', '--kafka-config', config, '--topic', 'sec-in', '--from-offset', '0', '-o', path.join(tmp, 'replay'), '--json']);
      expect(replayed.code).toBe(0);
      expect(JSON.parse(replayed.stdout.toString())).toMatchObject({ succeeded: 6, failed: 0 });
      printed += (await request(`${serve.url}/v1/state`)).body.toString() + (await request(`${serve.url}/metrics`)).body.toString();
      // status records as stored in the topic
      printed += (await readTopic(`127.0.0.1:${PORT}`, 'bgrm.status', 1000, 5000, () => false, settings)).map((m) => m.value?.toString() ?? '').join('\n');
    } finally {
      await serve.stop();
      printed += serve.stdout() + serve.stderr();
    }
    expect(printed.length).toBeGreaterThan(1000);
    expect(printed).not.toContain(password);
  }, 300000);

  it('mutual TLS: capture and a worker with a client certificate', async () => {
    const config = path.join(tls, 'mtls.properties');
    const cap = await run(['capture', '--video', video, '--camera-id', 'mtls', '--topic', 'mtls-in', '--fps', '0', '--max-frames', '3', '--kafka-config', config, '--json'], {});
    expect(cap.code).toBe(0);
    const w = await run(['process', '--kafka-config', config, '--topic', 'mtls-in', '--group', 'mtls', '-o', path.join(tmp, 'mtls'), '--idle-exit', '5', '--no-status', '--json'], {});
    expect(w.code).toBe(0);
    expect(JSON.parse(w.stdout.toString())).toMatchObject({ succeeded: 3 });
  }, 180000);

  it('a wrong password and an unknown CA are named (ERR_KAFKA_AUTH, ERR_KAFKA_TLS) within about the connect timeout', async () => {
    const config = path.join(tls, 'client.properties');
    const base = ['capture', '--video', video, '--camera-id', 'x', '--topic', 'sec-in', '--fps', '0', '--max-frames', '1', '--kafka-config', config, '--connect-timeout', '5'];
    let t0 = Date.now();
    const wrong = await run(base, { BGRM_KAFKA_SASL_PASSWORD: 'not-the-password' });
    expect({ code: wrong.code, signal: wrong.signal, inTime: Date.now() - t0 < 9000 }).toEqual({ code: 1, signal: null, inTime: true });
    expect(wrong.stderr).toContain('ERR_KAFKA_AUTH');
    expect(wrong.stderr).toMatch(/refused the credentials of user 'bgrm'/);
    const otherCa = path.join(tmp, 'other-ca.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=not the broker CA', '-keyout', path.join(tmp, 'other-ca.key'), '-out', otherCa], { stdio: 'ignore' });
    expect(existsSync(otherCa)).toBe(true);
    t0 = Date.now();
    const untrusted = await run([...base, '--ssl-ca', otherCa]);
    expect({ code: untrusted.code, signal: untrusted.signal, inTime: Date.now() - t0 < 9000 }).toEqual({ code: 1, signal: null, inTime: true });
    expect(untrusted.stderr).toContain('ERR_KAFKA_TLS');
    expect(untrusted.stderr).toMatch(/certificate verify failed/);
    expect(wrong.stderr + untrusted.stderr).not.toContain(password);
  }, 120000);

  it("the broker's ACLs: a denied topic, consumer group and transactional id each named within the connect timeout", async () => {
    const config = path.join(tls, 'client.properties');
    const k = ['--kafka-config', config, '--connect-timeout', '5'];
    const timed = async (args: string[]) => {
      const t0 = Date.now();
      const r = await run([...args, ...k]);
      return { ...r, ms: Date.now() - t0 };
    };
    const topic = await timed(['capture', '--video', video, '--camera-id', 'acl', '--topic', 'denied-frames', '--fps', '0', '--max-frames', '2']);
    expect(topic.stderr).toContain('ERR_KAFKA_TOPIC_DENIED');
    expect(topic.said).toMatch(/denies user 'bgrm' topic 'denied-frames'.*WRITE and DESCRIBE/s);
    // frames to read, for the worker cases
    expect((await run(['capture', '--video', video, '--camera-id', 'acl', '--topic', 'acl-in', '--fps', '0', '--max-frames', '2', ...k])).code).toBe(0);
    const group = await timed(['process', '--topic', 'acl-in', '--group', 'denied-workers', '-o', path.join(tmp, 'acl'), '--idle-exit', '5', '--no-status']);
    expect(group.stderr).toContain('ERR_KAFKA_GROUP_DENIED');
    expect(group.said).toMatch(/consumer group 'denied-workers'/);
    const txn = await timed(['process', '--topic', 'acl-in', '--group', 'acl', '--output-topic', 'acl-out', '--transactional-id-prefix', 'denied-', '--worker-id', 'w1', '--idle-exit', '5', '--no-status']);
    expect(txn.stderr).toContain('ERR_KAFKA_TXN_DENIED');
    expect(txn.said).toMatch(/transactional id 'denied-acl-w1'.*--transactional-id-prefix/s);
    // A worker whose output topic is refused (the commit that fails may be the timer's, after the last frame)
    const output = await timed(['process', '--topic', 'acl-in', '--group', 'acl2', '--output-topic', 'denied-out', '--idle-exit', '5', '--no-status']);
    expect(output.stderr).toContain('ERR_KAFKA_TOPIC_DENIED');
    expect(output.said).toMatch(/topic 'denied-out'/);
    const replay = await timed(['replay', '--topic', 'denied-frames', '--from-offset', '0', '-o', path.join(tmp, 'acl-replay')]);
    expect(replay.stderr).toContain('ERR_KAFKA_TOPIC_DENIED');
    for (const r of [topic, group, txn, output, replay]) {
      expect(r.code).toBe(1);
      expect(r.ms).toBeLessThan(15000); // start-up and model load included; the refusal itself comes at once
    }
    // the worker whose output was refused committed nothing: a permitted worker of that group gets both frames
    // (its settings file holds the password this time: `ps` shows the file's name, never what is in it)
    const withPassword = path.join(tmp, 'with-password.properties');
    writeFileSync(withPassword, `${readFileSync(config, 'utf8')}\nsasl.password=${password}\n`, { mode: 0o600 });
    const pending = run(['process', '--topic', 'acl-in', '--group', 'acl2', '-o', path.join(tmp, 'acl-after'), '--idle-exit', '5', '--no-status', '--json', '--worker-id', 'acl-after', '--kafka-config', withPassword], {});
    let ps = '';
    for (let i = 0; i < 40 && !ps.includes('acl-after'); i++) {
      await new Promise((r) => setTimeout(r, 250));
      ps = execFileSync('ps', ['-eww', '-o', 'args'], { encoding: 'utf8' });
    }
    expect(ps).toContain('with-password.properties');
    expect(ps).not.toContain(password);
    const after = await pending;
    expect(JSON.parse(after.stdout.toString())).toMatchObject({ succeeded: 2 });
  }, 240000);

  it('certificates: an expired client certificate, a broker certificate out of its dates or for another host, each named', async () => {
    const ca = ['-CA', path.join(tls, 'ca.pem'), '-CAkey', path.join(tls, 'ca.key')];
    const make = (name: string, days: string, san?: string) => {
      const key = path.join(tmp, `${name}.key`);
      const csr = path.join(tmp, `${name}.csr`);
      const pem = path.join(tmp, `${name}.pem`);
      execFileSync('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${name}`, '-keyout', key, '-out', csr], { stdio: 'ignore' });
      const ext = path.join(tmp, `${name}.ext`);
      writeFileSync(ext, san ? `subjectAltName=${san}\n` : 'basicConstraints=CA:FALSE\n');
      execFileSync('openssl', ['x509', '-req', '-in', csr, ...ca, '-CAcreateserial', '-days', days, '-extfile', ext, '-out', pem], { stdio: 'ignore' });
      return { key, pem };
    };
    // a client certificate from the broker's own CA that expired yesterday, on the mutual-TLS listener
    const old = make('expired-client', '-1');
    const base = ['capture', '--video', video, '--camera-id', 'x', '--topic', 'cert-in', '--fps', '0', '--max-frames', '1', '--connect-timeout', '5'];
    const expired = await run([...base, '--kafka-config', path.join(tls, 'mtls.properties'), '--ssl-cert', old.pem, '--ssl-key', old.key], {});
    expect(expired.code).toBe(1);
    expect(expired.stderr).toContain('ERR_KAFKA_TLS_EXPIRED');
    expect(expired.said).toMatch(/the client certificate .*expired-client.pem is valid from/);
    // brokers whose certificates are wrong: TLS servers with the broker CA's certificates (the handshake fails before any Kafka request)
    const servers: tlsNet.Server[] = [];
    const serve = (cert: { key: string; pem: string }) =>
      new Promise<number>((resolve) => {
        const srv = tlsNet.createServer({ key: readFileSync(cert.key), cert: readFileSync(cert.pem) }, (s) => s.on('error', () => undefined));
        srv.on('tlsClientError', () => undefined);
        servers.push(srv);
        srv.listen(0, '127.0.0.1', () => resolve((srv.address() as { port: number }).port));
      });
    try {
      const cases: [string, { key: string; pem: string }, string][] = [
        ['ERR_KAFKA_TLS_EXPIRED', make('expired-broker', '-1', 'IP:127.0.0.1'), "the broker's certificate is outside its dates"],
        ['ERR_KAFKA_TLS_NAME', make('other-host', '1', 'DNS:elsewhere.example'), "the broker's certificate is for another host name"],
      ];
      for (const [code, cert, text] of cases) {
        const port = await serve(cert);
        const t0 = Date.now();
        const r = await run([...base, '--brokers', `127.0.0.1:${port}`, '--security-protocol', 'SSL', '--ssl-ca', path.join(tls, 'ca.pem')], {});
        expect({ code: r.code, signal: r.signal, inTime: Date.now() - t0 < 9000 }).toEqual({ code: 1, signal: null, inTime: true });
        expect(r.stderr).toContain(code);
        expect(r.said).toContain(text);
      }
    } finally {
      servers.forEach((srv) => srv.close());
    }
  }, 180000);
});
