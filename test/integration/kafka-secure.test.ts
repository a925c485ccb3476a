// Kafka as production runs it: the project's broker with SASL_SSL (SCRAM-SHA-512 over TLS) and a
// mutual-TLS listener, certificates made at start. capture -> worker (folder, exactly-once topic) ->
// replay -> serve's feed over SCRAM/TLS, every frame once; mutual TLS; a wrong password and an
// unknown CA named within the connect timeout; the password in no output.
import { execFileSync } from 'node:child_process';
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import * as os from 'node:os';
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
    return r;
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
    expect([wrong.code, Date.now() - t0 < 9000]).toEqual([1, true]);
    expect(wrong.stderr).toContain('ERR_KAFKA_AUTH');
    expect(wrong.stderr).toMatch(/refused the credentials of user 'bgrm'/);
    const otherCa = path.join(tmp, 'other-ca.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=not the broker CA', '-keyout', path.join(tmp, 'other-ca.key'), '-out', otherCa], { stdio: 'ignore' });
    expect(existsSync(otherCa)).toBe(true);
    t0 = Date.now();
    const untrusted = await run([...base, '--ssl-ca', otherCa]);
    expect([untrusted.code, Date.now() - t0 < 9000]).toEqual([1, true]);
    expect(untrusted.stderr).toContain('ERR_KAFKA_TLS');
    expect(untrusted.stderr).toMatch(/certificate verify failed/);
    expect(wrong.stderr + untrusted.stderr).not.toContain(password);
  }, 120000);
});
