// npm run bench:stream: one camera streamed at 5, 10 and 24 fps through one worker (all cores), then
// through two workers of one thread each, on a real local broker. Prints achieved fps, end-to-end
// latency p50/p95/p99 (capture timestamp -> PNG durable) and the consumer lag when capture ends.
import { execFileSync } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as Kafka from 'node-rdkafka';
import { projectRoot } from '../lib/native';
import { runCli as run } from './common';

const kafka = path.join(projectRoot, 'scripts', 'kafka', 'kafka.sh');

async function lag(brokers: string, topic: string, group: string): Promise<number> {
  const c = new Kafka.KafkaConsumer({ 'metadata.broker.list': brokers, 'group.id': group, 'enable.auto.commit': false }, {});
  await new Promise<void>((res, rej) => c.connect({ timeout: 10000 }, (e) => (e ? rej(new Error(e.message)) : res())));
  const parts = [0, 1, 2, 3].map((partition) => ({ topic, partition }));
  const committed = await new Promise<Kafka.TopicPartitionOffset[]>((res, rej) => c.committed(parts, 10000, (e, tp) => (e ? rej(new Error(e.message)) : res(tp))));
  let total = 0;
  for (const tp of committed) {
    const wm = await new Promise<Kafka.WatermarkOffsets>((res, rej) => c.queryWatermarkOffsets(topic, tp.partition, 10000, (e, w) => (e ? rej(new Error(e.message)) : res(w))));
    total += wm.highOffset - Math.max(typeof tp.offset === 'number' ? tp.offset : -1, wm.lowOffset);
  }
  await new Promise<void>((res) => c.disconnect(() => res()));
  return total;
}

async function main(): Promise<void> {
  const testdata = path.resolve(process.argv[2] ?? path.join(projectRoot, '..', 'shared', 'testdata'));
  const video = path.join(testdata, 'video', 'dance-twirl.mp4');
  if (!existsSync(video)) throw new Error(`${video} not found (pass the testdata folder)`);
  const seconds = Number(process.env.BGRM_STREAM_SECONDS ?? 10);
  const port = 39092;
  const brokers = execFileSync('bash', [kafka, 'start', '--port', String(port)], { encoding: 'utf8' }).trim();
  const out = await fs.mkdtemp(path.join(os.tmpdir(), 'bgrm-stream-'));
  console.log(`stream benchmark: dance-twirl.mp4 (854x480) looped for ${seconds} s per run, u2netp, ${os.availableParallelism()} cores`);
  try {
    for (const workers of [1, 2]) {
      for (const fps of [5, 10, 24]) {
        const topic = `stream-${workers}w-${fps}`;
        const group = `g-${topic}`;
        // one worker: the default layout (one single-threaded model run per core); two: one thread each
        const threadArgs = workers === 1 ? [] : ['--threads', '1'];
        await run(['capture', '--video', video, '--camera-id', 'cam', '--brokers', brokers, '--topic', topic, '--fps', String(fps), '--max-frames', '1', '--partitions', '4']);
        const ws = [...Array(workers).keys()].map((i) =>
          run(['process', '--brokers', brokers, '--topic', topic, '--group', group, '-o', path.join(out, topic), ...threadArgs, '--idle-exit', '10', '--json', '--worker-id', `w${i}`]),
        );
        await new Promise((r) => setTimeout(r, 3000)); // workers load the model and join
        const t0 = Date.now();
        const cap = await run(['capture', '--video', video, '--camera-id', 'cam', '--brokers', brokers, '--topic', topic, '--fps', String(fps), '--loop', '--max-frames', String(fps * seconds), '--json']);
        const lagAtEnd = await lag(brokers, topic, group);
        const results = (await Promise.all(ws)).map((r) => JSON.parse(r.stdout));
        const processed = results.reduce((n, s) => n + s.succeeded, 0);
        const wall = (Date.now() - t0) / 1000;
        const lat = results.map((s) => s.latencyMs).sort((a, b) => b.p95 - a.p95)[0];
        const sent = JSON.parse(cap.stdout).sent;
        console.log(
          `${workers === 1 ? '1 worker (default layout)' : '2 workers x 1 thread'}, capture ${String(fps).padStart(2)} fps: sent ${sent}, processed ${processed} ` +
            `(${(processed / Math.max(wall - 10, 1)).toFixed(1)} frames/s from capture start to the last frame), latency p50 ${lat.p50} ms p95 ${lat.p95} ms p99 ${lat.p99} ms, lag when capture ended ${lagAtEnd}`,
        );
      }
    }
  } finally {
    execFileSync('bash', [kafka, 'stop', '--port', String(port)]);
    await fs.rm(out, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(`stream bench failed: ${(err as Error).message}`);
  process.exit(1);
});
