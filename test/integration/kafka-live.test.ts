// A live pipeline on a real broker, started in the order people start it: the dashboard first, before
// any topic exists, then a camera and a worker writing an exactly-once output topic. The dashboard
// finds the worker and the previews; the worker commits as the stream goes (short transactions
// while it keeps up) and every frame is in the output exactly once.
import type { ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { readTopic, startBroker, stopBroker, testPort } from '../helpers/kafka';
import { request, spawnUntil, startServe, stopProcess, type Served } from '../helpers/serve';
import { spawnBgrm } from '../helpers/cli';
import { describeWith, hasTestdata, testdata } from '../helpers/testdata';
import { headerMap } from '../../src/lib/kafka/messages';

const PORT = testPort(700);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface StateSnapshot {
  kafka: { waitingFor: string[]; connected: boolean };
  workers: { workerId: string; commitIntervalMs?: number; inFlight?: number; depth?: { mean: number; max: number } }[];
  cameras: { id: string; ready: boolean }[];
}

async function state(url: string): Promise<StateSnapshot> {
  return JSON.parse((await request(`${url}/v1/state`)).body.toString()) as StateSnapshot;
}

describeWith('../shared/testdata/video', hasTestdata('video'))('a live pipeline started dashboard first', () => {
  let brokers: string;
  let server: Served | undefined;
  let worker: Served | undefined;
  let capture: ChildProcess | undefined;
  beforeAll(() => {
    brokers = startBroker(PORT);
  }, 180000);
  afterAll(async () => {
    await server?.stop();
    await worker?.stop();
    if (capture && capture.exitCode === null) {
      await stopProcess(capture, new Promise((res) => capture!.once('close', res)), 30000, 'bgrm capture');
    }
    stopBroker(PORT);
  }, 240000);

  it('serve waits for the output topic, lists a worker started after it within 10 s, and every frame is output once', async () => {
    server = await startServe(['--brokers', brokers, '--topic', 'order-in', '--output-topic', 'order-out']);
    // nothing exists yet but the status topic, which serve makes itself
    const before = await state(server.url);
    expect(before.kafka.connected).toBe(true);
    expect(before.kafka.waitingFor).toEqual(['order-out']);
    expect(before.workers).toEqual([]);

    const frames = 40;
    // 2 fps: the default float worker makes about 3.7 frames/s on 2 cores with serve and capture
    // beside it; at 4 fps it fell behind now and then and batched, which is not what this tests.
    capture = spawnBgrm(
      ['capture', '--video', path.join(testdata, 'video', 'breakdance.mp4'), '--camera-id', 'cam-order', '--brokers', brokers, '--topic', 'order-in', '--fps', '2', '--max-frames', String(frames), '--partitions', '2'],
      { stdio: 'ignore' },
    );
    worker = await spawnUntil(
      ['process', '--brokers', brokers, '--topic', 'order-in', '--group', 'order', '--output-topic', 'order-out', '--metrics-port', '0', '--worker-id', 'order-w1', '--idle-exit', '8', '--json'],
      /metrics: (http:\/\/\S+)\/metrics/,
    );
    const started = Date.now();
    let listed: StateSnapshot['workers'][number] | undefined;
    while (!listed && Date.now() - started < 10000) {
      listed = (await state(server.url)).workers.find((w) => w.workerId === 'order-w1');
      if (!listed) await sleep(250);
    }
    expect(listed).toBeDefined();
    // the dashboard reads the output topic once the worker made it: a camera preview appears
    let snapshot = await state(server.url);
    for (const deadline = Date.now() + 60000; !snapshot.cameras.some((c) => c.id === 'cam-order' && c.ready) && Date.now() < deadline; ) {
      await sleep(500);
      snapshot = await state(server.url);
    }
    expect(snapshot.kafka.waitingFor).toEqual([]);
    expect(snapshot.cameras.find((c) => c.id === 'cam-order')?.ready).toBe(true);
    // a worker that keeps up commits every 100 ms, and says so in its status records
    let reported = snapshot.workers.find((w) => w.workerId === 'order-w1');
    for (const deadline = Date.now() + 30000; reported?.commitIntervalMs !== 100 && Date.now() < deadline; ) {
      await sleep(500);
      reported = (await state(server.url)).workers.find((w) => w.workerId === 'order-w1');
    }
    expect(reported?.commitIntervalMs).toBe(100);
    expect(typeof reported?.inFlight).toBe('number');
    expect(reported?.depth?.max).toBeGreaterThanOrEqual(0);

    expect(await worker.exited).toBe(0);
    const summary = JSON.parse(worker.stdout()) as { succeeded: number; transactions: { committed: number }; depth: { mean: number; max: number } };
    expect(summary.succeeded).toBe(frames);
    // short transactions while caught up: far more than one per 16 frames
    expect(summary.transactions.committed).toBeGreaterThanOrEqual(frames / 4);
    expect(summary.depth.max).toBeGreaterThanOrEqual(0);
    const out = await readTopic(brokers, 'order-out', frames, 30000);
    const numbers = out.map((m) => Number(headerMap(m.headers).get('frame-number'))).sort((a, b) => a - b);
    expect(numbers).toEqual([...Array(frames).keys()]);
  }, 300000);
});
