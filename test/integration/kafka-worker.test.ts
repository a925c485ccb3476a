// bgrm process as Kafka workers against a real broker: two workers in one group share a 4-partition
// topic of two cameras; every frame lands once in the folder; a bad message goes to the dead-letter topic.
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { encodeFrameMessage, headerMap } from '../../src/lib/kafka/messages';
import { native } from '../../src/lib/native';
import { runCli, spawnBgrm } from '../helpers/cli';
import { produceRaw, readTopic, startBroker, stopBroker, testPort } from '../helpers/kafka';
import { describeWith, hasTestdata, testdata } from '../helpers/testdata';

const PORT = testPort(100);
const FRAMES = 16;

describeWith('../shared/testdata/video', hasTestdata('video'))('bgrm process as Kafka workers (real broker)', () => {
  let brokers: string;
  let out: string;
  beforeAll(async () => {
    brokers = startBroker(PORT);
    out = await fs.mkdtemp(path.join(os.tmpdir(), 'bgrm-worker-'));
  }, 180000);
  afterAll(async () => {
    stopBroker(PORT);
    await fs.rm(out, { recursive: true, force: true });
  });

  it('two workers, two cameras, 4 partitions: every frame once as a valid RGBA PNG; bad input dead-lettered', async () => {
    const topic = 'frames-workers';
    for (const [id, video] of [
      ['cam-a', 'breakdance.mp4'],
      ['cam-b', 'dance-twirl.mp4'],
    ]) {
      const r = await runCli(['capture', '--video', path.join(testdata, 'video', video), '--camera-id', id, '--brokers', brokers, '--topic', topic, '--fps', '0', '--max-frames', String(FRAMES), '--partitions', '4']);
      expect(r.code).toBe(0);
    }
    await produceRaw(brokers, topic, 'cam-a', Buffer.from('definitely not a frame'));

    const worker = (n: number) =>
      runCli(['process', '--brokers', brokers, '--topic', topic, '--group', 'cutters', '-o', out, '--worker-id', `w${n}`, '--idle-exit', '8', '--threads', '1', '--json']);
    const results = await Promise.all([worker(1), worker(2)]);
    const summaries = results.map((r) => {
      expect(r.code).toBe(0);
      return JSON.parse(r.stdout.toString());
    });
    const succeeded = summaries.reduce((n, s) => n + s.succeeded, 0);
    const dead = summaries.reduce((n, s) => n + s.deadLettered, 0);
    expect(succeeded).toBeGreaterThanOrEqual(2 * FRAMES); // a rebalance may replay a frame; its file is rewritten
    expect(dead).toBe(1);

    for (const id of ['cam-a', 'cam-b']) {
      const files = (await fs.readdir(path.join(out, id))).sort();
      expect(files).toEqual([...Array(FRAMES).keys()].map((i) => `${String(i).padStart(8, '0')}.png`));
      const im = await native().decode(await fs.readFile(path.join(out, id, files[FRAMES - 1])), { channels: 4 });
      expect([im.width, im.height, im.channels]).toEqual([854, 480, 4]);
    }
    expect((await fs.readdir(out)).sort()).toEqual(['cam-a', 'cam-b']); // no stray or temporary files

    const dlq = await readTopic(brokers, `${topic}.dlq`, 1, 15000);
    expect(dlq).toHaveLength(1);
    const h = headerMap(dlq[0].headers);
    expect(h.get('bgrm-error-code')).toBe('ERR_BAD_MESSAGE');
    expect(h.get('bgrm-source')).toMatch(new RegExp(`^${topic}\\[\\d\\]@\\d+$`));
    expect(dlq[0].value!.toString()).toBe('definitely not a frame');
  }, 600000);

  it('--max-lag-ms skips frames that are too old, counts them, and commits past them', async () => {
    const topic = 'frames-stale';
    const r = await runCli(['capture', '--video', path.join(testdata, 'video', 'breakdance.mp4'), '--camera-id', 'cam-s', '--brokers', brokers, '--topic', topic, '--fps', '0', '--max-frames', '4', '--partitions', '1']);
    expect(r.code).toBe(0);
    await new Promise((res) => setTimeout(res, 1500));
    const stale = path.join(out, 'stale');
    const args = ['process', '--brokers', brokers, '--topic', topic, '--group', 'live', '-o', stale, '--max-lag-ms', '1000', '--idle-exit', '4', '--json'];
    const first = await runCli(args);
    expect(first.code).toBe(0);
    expect(JSON.parse(first.stdout.toString())).toMatchObject({ frames: 4, skipped: 4, succeeded: 0, failed: 0 });
    await expect(fs.readdir(stale)).rejects.toMatchObject({ code: 'ENOENT' });
    const again = await runCli(args);
    expect(JSON.parse(again.stdout.toString())).toMatchObject({ frames: 0 }); // the skips were committed
  }, 120000);

  it('bad messages of every kind land in the dead-letter topic with reasons; nothing escapes the folder', async () => {
    const topic = 'frames-bad';
    const jpg = await fs.readFile(path.join(testdata, 'rembg', 'car-1.jpg'));
    const meta = { cameraId: 'cam-x', frameNumber: 0, timestampMs: Date.now(), width: 480, height: 360, encoding: 'jpeg' as const, quality: 90 };
    const huge = Buffer.from(jpg);
    const sof = huge.indexOf(Buffer.from([0xff, 0xc0])); // baseline SOF: height and width follow the length and precision
    huge.writeUInt16BE(60000, sof + 5);
    huge.writeUInt16BE(60000, sof + 7);
    const json = (o: object) => Buffer.from(JSON.stringify(o));
    const cases: [string, Buffer, ReturnType<typeof encodeFrameMessage>['headers']][] = [
      ['random bytes', randomBytes(2000), []],
      ['truncated JPEG', jpg.subarray(0, jpg.length >> 1), encodeFrameMessage({ ...meta, frameNumber: 1 }, jpg, 'binary').headers],
      ['bad base64', json({ camera_id: 'cam-x', frame_number: 2, timestamp_ms: 1, frame_data: '%%%not base64%%%' }), []],
      ['a JPEG without headers', jpg, []],
      ['huge declared dimensions', huge, encodeFrameMessage({ ...meta, frameNumber: 3 }, huge, 'binary').headers],
      ['a path as camera id', json({ camera_id: '../../etc', frame_number: 4, timestamp_ms: 1, frame_data: jpg.toString('base64') }), []],
    ];
    for (const [, value, headers] of cases) await produceRaw(brokers, topic, 'cam-x', value, headers);
    const good = encodeFrameMessage({ ...meta, frameNumber: 5 }, jpg, 'binary');
    await produceRaw(brokers, topic, 'cam-x', good.value, good.headers);

    const folder = path.join(out, 'bad');
    const r = await runCli(['process', '--brokers', brokers, '--topic', topic, '--group', 'bad', '-o', folder, '--idle-exit', '4', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout.toString())).toMatchObject({ frames: 7, succeeded: 1, failed: 6, deadLettered: 6 });
    expect(await fs.readdir(folder)).toEqual(['cam-x']);
    expect(await fs.readdir(path.join(folder, 'cam-x'))).toEqual(['00000005.png']);
    const dlq = await readTopic(brokers, `${topic}.dlq`, 6, 15000);
    expect(dlq.map((m) => headerMap(m.headers).get('bgrm-error-code'))).toEqual([
      'ERR_BAD_MESSAGE',
      'ERR_DECODE',
      'ERR_BAD_MESSAGE',
      'ERR_BAD_MESSAGE',
      'ERR_IMAGE_TOO_LARGE',
      'ERR_BAD_MESSAGE',
    ]);
    for (const m of dlq) expect(headerMap(m.headers).get('bgrm-error')!.length).toBeGreaterThan(5);
  }, 120000);

  it.each([3, 9])('folder sink: SIGKILL after %i frames, restart: every frame exactly once, no temporary files', async (killAfter) => {
    const topic = `frames-kill-${killAfter}`;
    const r = await runCli(['capture', '--video', path.join(testdata, 'video', 'breakdance.mp4'), '--camera-id', 'cam-k', '--brokers', brokers, '--topic', topic, '--fps', '0', '--max-frames', String(FRAMES), '--partitions', '2']);
    expect(r.code).toBe(0);
    const folder = path.join(out, `kill-${killAfter}`);
    const args = ['process', '--brokers', brokers, '--topic', topic, '--group', `kill-${killAfter}`, '-o', folder, '--worker-id', 'k1', '--json'];
    const first = spawnBgrm(args, { stdio: 'ignore' });
    const exited = new Promise((res) => first.on('close', res));
    const count = async () => (await fs.readdir(path.join(folder, 'cam-k')).catch(() => [])).filter((f) => f.endsWith('.png')).length;
    try {
      for (let i = 0; i < 1200 && (await count()) < killAfter; i++) await new Promise((res) => setTimeout(res, 100));
      expect(await count()).toBeLessThan(FRAMES);
    } finally {
      first.kill('SIGKILL');
      await exited;
    }
    const second = await runCli([...args, '--idle-exit', '6']);
    expect(second.code).toBe(0);
    const files = (await fs.readdir(path.join(folder, 'cam-k'))).sort();
    expect(files).toEqual([...Array(FRAMES).keys()].map((i) => `${String(i).padStart(8, '0')}.png`));
    for (const f of files) expect((await fs.stat(path.join(folder, 'cam-k', f))).size).toBeGreaterThan(1000);
  }, 300000);

  it('a broker that is down: the worker says so and exits 1', async () => {
    const r = await runCli(['process', '--brokers', '127.0.0.1:1', '--topic', 't', '-o', out, '--connect-timeout', '3']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('ERR_BROKER_UNREACHABLE');
  });
});
