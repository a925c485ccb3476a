// Streams that change under the workers, against a real broker: a worker joins and another leaves
// in the middle of a stream, and the broker itself is stopped and restarted. A read_committed reader
// of the output topic must then find every (camera, frame) exactly once.
import type { ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { decodeFrameMessage, headerMap, type IncomingMessage } from '../../src/lib/kafka/messages';
import { runCli, spawnBgrm } from '../helpers/cli';
import { readTopic, startBroker, startBrokerAgain, stopBroker, testPort } from '../helpers/kafka';
import { describeWith, hasTestdata, testdata } from '../helpers/testdata';

const PORT = testPort(400);

interface Started {
  child: ChildProcess;
  exit: Promise<number | null>;
  stdout: () => string;
  stderr: () => string;
}

/** Starts a bgrm command that traces its group and stop steps (BGRM_DEBUG), shown when a test fails. */
function start(args: string[]): Started {
  const child = spawnBgrm(args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, BGRM_DEBUG: 'kafka,stop' } });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exit = new Promise<number | null>((resolve) =>
    child.on('close', (code) => resolve(code)),
  );
  return { child, exit, stdout: () => out, stderr: () => err };
}

/** The exit code, or an error with the command's trace when it has not exited within `ms`. */
async function exited(p: Started, ms: number, what: string): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), ms)));
  const code = await Promise.race([p.exit, late]);
  clearTimeout(timer);
  if (code === 'late') throw new Error(`${what} (pid ${p.child.pid}) did not exit within ${ms / 1000} s; its stderr:\n${p.stderr().slice(-6000)}`);
  if (code !== 0 && code !== 130) process.stderr.write(`${what} exited ${code}; its stderr:\n${p.stderr().slice(-6000)}\n`);
  return code;
}

/** "camera/frame" of every output message, sorted, and the worker that wrote each. */
function frameKeys(msgs: IncomingMessage[]): string[] {
  return msgs.map((m) => {
    const f = decodeFrameMessage(m);
    return `${f.cameraId}/${String(f.frameNumber).padStart(4, '0')}`;
  });
}

const expected = (cameras: string[], frames: number) =>
  cameras.flatMap((c) => [...Array(frames).keys()].map((i) => `${c}/${String(i).padStart(4, '0')}`)).sort();

describeWith('../shared/testdata/video', hasTestdata('video'))('rebalances and broker restarts (real broker)', () => {
  let brokers: string;
  beforeAll(() => {
    brokers = startBroker(PORT);
  }, 180000);
  afterAll(() => stopBroker(PORT));

  it('a worker joins and another leaves mid-stream: every frame exactly once (read_committed)', async () => {
    const topic = 'jl-in';
    const cameras = ['cam-a', 'cam-b', 'cam-d', 'door']; // keys that spread over the 4 partitions
    const FRAMES = 10;
    for (const [i, id] of cameras.entries()) {
      const video = ['breakdance.mp4', 'dance-twirl.mp4'][i % 2];
      const r = await runCli(['capture', '--video', path.join(testdata, 'video', video), '--camera-id', id, '--brokers', brokers, '--topic', topic, '--fps', '0', '--max-frames', String(FRAMES), '--partitions', '4']);
      if (r.code !== 0) throw new Error(`capture of ${id} failed: ${r.stderr}`);
    }
    // no --worker-id: dynamic membership, so a worker that stops leaves the group at once
    const args = ['process', '--brokers', brokers, '--topic', topic, '--group', 'jl', '--output-topic', 'jl-out', '--threads', '1', '--json'];
    const a = start(args);
    let b: ReturnType<typeof start> | undefined;
    try {
      const early = await readTopic(brokers, 'jl-out', 6, 120000);
      expect(early.length).toBeGreaterThanOrEqual(6);
      b = start([...args, '--idle-exit', '10']);
      const byB = (msgs: IncomingMessage[]) => msgs.filter((m) => headerMap(m.headers).get('bgrm-worker')?.endsWith(`-${b!.child.pid}`));
      const joined = await readTopic(brokers, 'jl-out', 10_000, 120000, (msgs) => byB(msgs).length >= 2);
      expect(byB(joined).length).toBeGreaterThanOrEqual(2); // the newcomer got partitions and committed work
      expect(joined.length).toBeLessThan(cameras.length * FRAMES); // still mid-stream when the first one leaves
      a.child.kill('SIGTERM');
      expect([0, 130]).toContain(await exited(a, 60000, 'the worker stopped by SIGTERM'));
      expect(await exited(b, 180000, 'the worker that joined (--idle-exit 10)')).toBe(0);
    } catch (err) {
      process.stderr.write(`first worker's stderr:\n${a.stderr().slice(-6000)}\nsecond worker's stderr:\n${b?.stderr().slice(-6000)}\n`);
      throw err;
    } finally {
      a.child.kill('SIGKILL');
      b?.child.kill('SIGKILL');
    }
    const out = await readTopic(brokers, 'jl-out', 10_000, 20000);
    expect(frameKeys(out).sort()).toEqual(expected(cameras, FRAMES));
    const workers = new Set(out.map((m) => headerMap(m.headers).get('bgrm-worker')));
    expect(workers.size).toBe(2);
  }, 600000);

  it('the broker stops and restarts mid-stream: capture and worker recover, every frame exactly once', async () => {
    const topic = 'rs-in';
    const FRAMES = 45;
    const capture = start(['capture', '--video', path.join(testdata, 'video', 'breakdance.mp4'), '--camera-id', 'cam-r', '--brokers', brokers, '--topic', topic, '--fps', '3', '--max-frames', String(FRAMES), '--partitions', '2', '--json']);
    const worker = start(['process', '--brokers', brokers, '--topic', topic, '--group', 'rs', '--output-topic', 'rs-out', '--idle-exit', '40', '--json']);
    let restartedAt = 0;
    try {
      const early = await readTopic(brokers, 'rs-out', 4, 180000);
      expect(early.length).toBeGreaterThanOrEqual(4);
      stopBroker(PORT, true);
      await new Promise((res) => setTimeout(res, 5000));
      startBrokerAgain(PORT);
      restartedAt = Date.now();
      expect(await exited(capture, 240000, 'the capture')).toBe(0);
      expect(await exited(worker, 240000, 'the worker (--idle-exit 40)')).toBe(0);
    } catch (err) {
      process.stderr.write(`capture's stderr:\n${capture.stderr().slice(-6000)}\nworker's stderr:\n${worker.stderr().slice(-6000)}\n`);
      throw err;
    } finally {
      capture.child.kill('SIGKILL');
      worker.child.kill('SIGKILL');
    }
    const sent = JSON.parse(capture.stdout());
    expect(sent).toMatchObject({ sent: FRAMES, failed: 0 });
    const out = await readTopic(brokers, 'rs-out', 10_000, 20000);
    if (process.env.BGRM_DEBUG) {
      for (const m of out) process.stdout.write(`${m.partition}@${m.offset} ts=${m.timestamp} ${frameKeys([m])[0]} ${headerMap(m.headers).get('bgrm-source')}\n`);
      process.stdout.write(`restarted at ${restartedAt}; worker: ${worker.stdout()}\n${worker.stderr()}\n`);
    }
    expect(frameKeys(out).sort()).toEqual(expected(['cam-r'], FRAMES));
    const after = out.map((m) => m.timestamp ?? 0).filter((t) => t >= restartedAt);
    expect(after.length).toBeGreaterThan(0);
    const recoveryMs = Math.min(...after) - restartedAt;
    const summary = JSON.parse(worker.stdout());
    process.stdout.write(
      `broker restart: first frame processed ${(recoveryMs / 1000).toFixed(1)} s after the broker was back; ` +
        `transactions committed ${summary.transactions.committed}, aborted ${summary.transactions.aborted}\n`,
    );
  }, 600000);
});
