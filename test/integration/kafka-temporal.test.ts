// Temporal matting across a worker restart (real broker, real model). The defined behaviour: a
// camera's matte state lives in the worker that owns its partition. When the owner changes (a crash
// and restart, a rebalance), the new owner starts the camera's stream afresh at the first frame it
// takes, the first uncommitted one. From there its outputs are exactly what `bgrm replay` gives for
// a range that starts at that offset. They differ from what an uninterrupted stream would have given.
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runCli, spawnBgrm } from '../helpers/cli';
import { startBroker, stopBroker, testPort } from '../helpers/kafka';
import { describeWith, hasTestdata, testdata } from '../helpers/testdata';

const PORT = testPort(600);
const FRAMES = 24;
const topic = 'frames-temporal';

describeWith('../shared/testdata/video', hasTestdata('video'))('temporal matting across a worker restart (real broker)', () => {
  let brokers: string;
  let tmp: string;
  beforeAll(async () => {
    brokers = startBroker(PORT);
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'bgrm-ktemporal-'));
    // one partition: frame i is at offset i
    const r = await runCli(['capture', '--video', path.join(testdata, 'video', 'breakdance.mp4'), '--camera-id', 'cam-t', '--brokers', brokers, '--topic', topic, '--fps', '0', '--max-frames', String(FRAMES), '--partitions', '1']);
    expect(r.code).toBe(0);
  }, 240000);
  afterAll(async () => {
    stopBroker(PORT);
    await fs.rm(tmp, { recursive: true, force: true });
  });

  it('after SIGKILL and a restart, the stream restarts at the first uncommitted frame, exactly as a replay from there', async () => {
    const folder = path.join(tmp, 'worker');
    const args = ['process', '--brokers', brokers, '--topic', topic, '--group', 'temporal', '-o', folder, '--json'];
    const first = spawnBgrm([...args, '--worker-id', 't1'], { stdio: 'ignore' });
    const exited = new Promise((res) => first.on('close', res));
    const count = async () => (await fs.readdir(path.join(folder, 'cam-t')).catch(() => [])).filter((f) => f.endsWith('.png')).length;
    try {
      for (let i = 0; i < 1200 && (await count()) < 8; i++) await new Promise((res) => setTimeout(res, 100));
      expect(await count()).toBeLessThan(FRAMES);
    } finally {
      first.kill('SIGKILL');
      await exited;
    }
    const second = await runCli([...args, '--worker-id', 't2', '--idle-exit', '25']);
    expect(second.code).toBe(0);
    const resumedAt = FRAMES - (JSON.parse(second.stdout.toString()) as { succeeded: number }).succeeded;
    expect(resumedAt).toBeGreaterThanOrEqual(0);
    expect(resumedAt).toBeLessThan(FRAMES);
    process.stdout.write(`restarted worker resumed at frame ${resumedAt} of ${FRAMES}\n`);

    const name = (i: number) => `${String(i).padStart(8, '0')}.png`;
    expect((await fs.readdir(path.join(folder, 'cam-t'))).sort()).toEqual([...Array(FRAMES).keys()].map(name));

    const fromThere = path.join(tmp, 'replay-from-resume');
    const fromStart = path.join(tmp, 'replay-from-0');
    for (const [out, start] of [[fromThere, resumedAt], [fromStart, 0]] as const) {
      const r = await runCli(['replay', '--brokers', brokers, '--topic', topic, '-o', out, '--from-offset', String(start), '--to-offset', String(FRAMES), '--json']);
      expect(r.code).toBe(0);
    }
    // from the resume point on: byte for byte what a replay from that offset gives
    for (let i = resumedAt; i < FRAMES; i++) {
      const worker = await fs.readFile(path.join(folder, 'cam-t', name(i)));
      expect(worker.equals(await fs.readFile(path.join(fromThere, 'cam-t', name(i))))).toBe(true);
    }
    // before it: the first worker's uninterrupted stream, which replay from 0 reproduces
    for (let i = 0; i < resumedAt; i++) {
      const worker = await fs.readFile(path.join(folder, 'cam-t', name(i)));
      expect(worker.equals(await fs.readFile(path.join(fromStart, 'cam-t', name(i))))).toBe(true);
    }
    // and the restart is visible: a fresh stream's first frame is not the carried one
    if (resumedAt > 0) {
      const fresh = await fs.readFile(path.join(folder, 'cam-t', name(resumedAt)));
      expect(fresh.equals(await fs.readFile(path.join(fromStart, 'cam-t', name(resumedAt))))).toBe(false);
    }
  }, 300000);
});
