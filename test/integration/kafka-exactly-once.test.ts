// Exactly once through a crash: a transactional worker (--output-topic) is killed with SIGKILL in
// the middle of a stream and restarted; a read_committed reader then finds every frame exactly once.
import * as path from 'node:path';
import { decodeFrameMessage, headerMap } from '../../src/lib/kafka/messages';
import { native } from '../../src/lib/native';
import { runCli, spawnBgrm } from '../helpers/cli';
import { produceRaw, readTopic, startBroker, stopBroker, testPort } from '../helpers/kafka';
import { describeWith, hasTestdata, testdata } from '../helpers/testdata';

const PORT = testPort(300);
const FRAMES = 24;

describeWith('../shared/testdata/video', hasTestdata('video'))('exactly once with --output-topic (real broker)', () => {
  let brokers: string;
  beforeAll(() => {
    brokers = startBroker(PORT);
  }, 180000);
  afterAll(() => stopBroker(PORT));

  // killed early, in the middle, and near the end of the stream
  it.each([2, 9, 18])('SIGKILL after %i committed outputs, restart: every frame once in the output topic, the bad message once in the DLQ', async (killAfter) => {
    const input = `eos-in-${killAfter}`;
    const output = `eos-out-${killAfter}`;
    const r = await runCli(['capture', '--video', path.join(testdata, 'video', 'dance-twirl.mp4'), '--camera-id', 'cam-k', '--brokers', brokers, '--topic', input, '--fps', '0', '--max-frames', String(FRAMES), '--partitions', '2']);
    expect(r.code).toBe(0);
    await produceRaw(brokers, input, 'cam-k', Buffer.from('garbage'));
    const args = ['process', '--brokers', brokers, '--topic', input, '--group', `eos-${killAfter}`, '--output-topic', output, '--worker-id', 'w1', '--json'];

    const first = spawnBgrm(args, { stdio: 'ignore' });
    const exited = new Promise((res) => first.on('close', res));
    try {
      // wait until some frames are committed, then kill without any chance to clean up
      const early = await readTopic(brokers, output, killAfter, 120000);
      expect(early.length).toBeGreaterThanOrEqual(killAfter);
      expect(early.length).toBeLessThan(FRAMES); // it really was mid-stream
    } finally {
      first.kill('SIGKILL');
      await exited;
    }

    const second = await runCli([...args, '--idle-exit', '6']);
    expect(second.code).toBe(0);
    const summary = JSON.parse(second.stdout.toString());
    expect(summary.transactions.committed).toBeGreaterThan(0);

    const out = await readTopic(brokers, output, 10_000, 20000); // read_committed, everything there is
    const numbers = out.map((m) => decodeFrameMessage(m).frameNumber).sort((a, b) => a - b);
    expect(numbers).toEqual([...Array(FRAMES).keys()]);
    const h = headerMap(out[0].headers);
    expect(h.get('bgrm-content')).toBe('mask/png');
    expect(h.get('camera-id')).toBe('cam-k');
    expect(Number(h.get('bgrm-e2e-ms'))).toBeGreaterThanOrEqual(0);
    const mask = await native().decode(out[0].value!);
    expect([mask.width, mask.height]).toEqual([854, 480]);

    const dlq = await readTopic(brokers, `${input}.dlq`, 10_000, 10000);
    expect(dlq).toHaveLength(1);
    expect(headerMap(dlq[0].headers).get('bgrm-error-code')).toBe('ERR_BAD_MESSAGE');
  }, 600000);
});
