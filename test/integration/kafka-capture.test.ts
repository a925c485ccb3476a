// bgrm capture against a real Kafka broker started by the project's script.
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { decodeFrameMessage } from '../../src/lib/kafka/messages';
import { native } from '../../src/lib/native';
import { runCli } from '../helpers/cli';
import { readTopic, startBroker, stopBroker, testPort } from '../helpers/kafka';
import { describeWith, hasTestdata, testdata } from '../helpers/testdata';

const PORT = testPort(0);

describeWith('../shared/testdata/video', hasTestdata('video'))('bgrm capture (real broker)', () => {
  let brokers: string;
  beforeAll(() => {
    brokers = startBroker(PORT);
  }, 180000);
  afterAll(() => stopBroker(PORT));

  it('two cameras into one 4-partition topic: every frame once, in order, one partition per camera', async () => {
    const topic = 'frames-two-cameras';
    const cams = [
      ['cam-a', path.join(testdata, 'video', 'breakdance.mp4')],
      ['cam-b', path.join(testdata, 'video', 'dance-twirl.mp4')],
    ];
    const results = await Promise.all(
      cams.map(([id, video]) =>
        runCli(['capture', '--video', video, '--camera-id', id, '--brokers', brokers, '--topic', topic, '--fps', '0', '--max-frames', '20', '--partitions', '4', '--json']),
      ),
    );
    for (const r of results) {
      expect(r.stderr).not.toContain('Error');
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout.toString())).toMatchObject({ sent: 20, failed: 0 });
    }
    const msgs = await readTopic(brokers, topic, 40);
    expect(msgs).toHaveLength(40);
    for (const [id] of cams) {
      const frames = msgs.map(decodeFrameMessage).filter((f) => f.cameraId === id);
      const partitions = new Set(msgs.filter((m) => String(m.key) === id).map((m) => m.partition));
      expect(partitions.size).toBe(1);
      expect(frames.map((f) => f.frameNumber)).toEqual([...Array(20).keys()]);
      expect(frames[0].meta).toMatchObject({ width: 854, height: 480, encoding: 'jpeg', quality: 85 });
    }
    const im = await native().decode(decodeFrameMessage(msgs[0]).bytes);
    expect([im.width, im.height]).toEqual([854, 480]);
  });

  it('--format seed-json writes the old JSON message, which bgrm reads back', async () => {
    const topic = 'frames-seed-json';
    const r = await runCli(['capture', '--video', path.join(testdata, 'video', 'breakdance.mp4'), '--camera-id', 'legacy', '--kafka-brokers', brokers, '--topic', topic, '--fps', '0', '--max-frames', '3', '--format', 'seed-json', '--quality', '70']);
    expect(r.code).toBe(0);
    const msgs = await readTopic(brokers, topic, 3);
    expect(msgs).toHaveLength(3);
    const j = JSON.parse(msgs[0].value!.toString());
    expect(Object.keys(j).sort()).toEqual(['camera_id', 'encoding', 'frame_data', 'frame_number', 'height', 'quality', 'timestamp_ms', 'width']);
    const f = decodeFrameMessage(msgs[2]);
    expect([f.cameraId, f.frameNumber, f.meta.quality]).toEqual(['legacy', 2, 70]);
    expect((await native().decode(f.bytes)).width).toBe(854);
  });

  it('client settings: a properties file (its bootstrap.servers), -X and the environment reach the client; bgrm\'s keys refused; no secret printed', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'bgrm-kafka-config-'));
    const secret = 'Sup3r-Secret-Value-42';
    const config = path.join(dir, 'client.properties');
    await fs.writeFile(config, `# a client.properties as Kafka users keep them\nbootstrap.servers = ${brokers}\ncompression.type: lz4\nclient.rack=rack-1\nsasl.password=${secret}\n`);
    const topic = 'capture-configured';
    const video = path.join(testdata, 'video', 'breakdance.mp4');
    const base = ['capture', '--video', video, '--camera-id', 'cfg', '--topic', topic, '--fps', '0', '--max-frames', '3'];
    const ok = await runCli([...base, '--kafka-config', config, '-X', 'linger.ms=1', '--json'], { env: { BGRM_KAFKA_SASL_USERNAME: 'bgrm' } });
    expect(ok.code).toBe(0);
    expect(await readTopic(brokers, topic, 3)).toHaveLength(3);
    expect(ok.stdout.toString() + ok.stderr).not.toContain(secret);
    const own = await runCli([...base, '--kafka-config', config, '-X', 'enable.idempotence=false']);
    expect(own.code).toBe(2);
    expect(own.stderr).toMatch(/'enable\.idempotence' \(from -X\) is bgrm's own/);
    const unknown = await runCli([...base, '--brokers', brokers, '-X', 'no.such.property=1', '--kafka-config', config]);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain('no.such.property');
    expect(unknown.stderr + own.stderr).not.toContain(secret);
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('a broker that is down: a clear error within the connect timeout, exit 1', async () => {
    const t0 = Date.now();
    const r = await runCli(['capture', '--video', path.join(testdata, 'video', 'breakdance.mp4'), '--camera-id', 'x', '--brokers', '127.0.0.1:1', '--topic', 't', '--connect-timeout', '3']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('ERR_BROKER_UNREACHABLE');
    expect(r.stderr).toContain('kafka.sh start');
    expect(Date.now() - t0).toBeLessThan(20000);
  });
});
