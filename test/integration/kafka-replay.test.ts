// bgrm replay against a real broker: a chosen range, by offset or time, reprocessed twice gives
// byte-identical files; other cameras can be filtered out.
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runCli } from '../helpers/cli';
import { startBroker, stopBroker, testPort } from '../helpers/kafka';
import { describeWith, hasTestdata, testdata } from '../helpers/testdata';

const PORT = testPort(200);
const topic = 'frames-replay';

describeWith('../shared/testdata/video', hasTestdata('video'))('bgrm replay (real broker)', () => {
  let brokers: string;
  let tmp: string;
  let beforeCapture: string;
  beforeAll(async () => {
    brokers = startBroker(PORT);
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'bgrm-replay-'));
    beforeCapture = new Date(Date.now() - 1000).toISOString();
    for (const [id, video] of [
      ['cam-a', 'breakdance.mp4'],
      ['cam-b', 'dance-twirl.mp4'],
    ]) {
      // one partition: offsets are predictable (cam-a 0..5, cam-b 6..9)
      const r = await runCli(['capture', '--video', path.join(testdata, 'video', video), '--camera-id', id, '--brokers', brokers, '--topic', topic, '--fps', '0', '--max-frames', id === 'cam-a' ? '6' : '4', '--partitions', '1']);
      expect(r.code).toBe(0);
    }
  }, 240000);
  afterAll(async () => {
    stopBroker(PORT);
    await fs.rm(tmp, { recursive: true, force: true });
  });

  const replay = (out: string, ...extra: string[]) => runCli(['replay', '--brokers', brokers, '--topic', topic, '-o', out, '--json', ...extra]);

  it('an offset range, twice: the same frames, byte-identical', async () => {
    const [a, b] = [path.join(tmp, 'a'), path.join(tmp, 'b')];
    for (const out of [a, b]) {
      const r = await replay(out, '--from-offset', '2', '--to-offset', '5');
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout.toString())).toMatchObject({ frames: 3, succeeded: 3, ranges: [{ partition: 0, start: 2, end: 5 }] });
    }
    const files = (await fs.readdir(path.join(a, 'cam-a'))).sort();
    expect(files).toEqual(['00000002.png', '00000003.png', '00000004.png']);
    for (const f of files) {
      expect((await fs.readFile(path.join(a, 'cam-a', f))).equals(await fs.readFile(path.join(b, 'cam-a', f)))).toBe(true);
    }
  });

  it('--from-time with a camera filter replays that camera to the end of the topic', async () => {
    const out = path.join(tmp, 'c');
    const r = await replay(out, '--from-time', beforeCapture, '--camera-id', 'cam-b');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout.toString())).toMatchObject({ succeeded: 4, skippedOtherCameras: 6 });
    expect((await fs.readdir(out)).sort()).toEqual(['cam-b']);
    expect((await fs.readdir(path.join(out, 'cam-b'))).length).toBe(4);
  });

  it('a missing topic and a missing start are clear errors', async () => {
    const r1 = await runCli(['replay', '--brokers', brokers, '--topic', 'nosuch', '--from-offset', '0', '-o', path.join(tmp, 'x')]);
    expect(r1.code).toBe(1);
    expect(r1.stderr).toMatch(/ERR_NO_TOPIC|ERR_KAFKA/);
    const r2 = await runCli(['replay', '--brokers', brokers, '--topic', topic, '-o', path.join(tmp, 'x')]);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toContain('--from-offset');
  });
});
