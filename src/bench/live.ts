// npm run bench:live: live latency on a real local broker. Cameras captured at a fixed rate (one at
// 12 fps, then two at 6 fps each) into a topic, one `--fast` worker writing files, then one writing
// an exactly-once output topic. Prints frames sent and out, end-to-end latency p50/p95/p99 (capture
// timestamp to file renamed, or to the output visible to a read_committed reader; the first 10 s
// excluded), the worker's live depth, and the ratio to the float model-only single-frame latency
// measured in the same run (the issue's bounds: 2x for files, 3x for the topic).
import { execFileSync } from 'node:child_process';
import { existsSync, promises as fs, watch } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as Kafka from 'node-rdkafka';
import { ensureTopic } from '../lib/kafka/client';
import { decodeFrameMessage, headerMap, type KafkaHeaders } from '../lib/kafka/messages';
import { projectRoot } from '../lib/native';
import { arg, benchModels, percentile, runCli } from './common';
import { modelOnly } from './model-only';

const kafka = path.join(projectRoot, 'scripts', 'kafka', 'kafka.sh');
const WARMUP_MS = 10000;

interface Scenario {
  cameras: number;
  fps: number;
  sink: 'files' | 'topic';
}

/** Reads a topic from the start with read_committed; calls `onMessage` with each message's arrival time. */
function tail(brokers: string, topic: string, onMessage: (m: Kafka.Message, atMs: number) => void): { stop: () => Promise<void> } {
  const c = new Kafka.KafkaConsumer(
    { 'metadata.broker.list': brokers, 'group.id': `bench-${topic}-${Date.now()}`, 'enable.auto.commit': false, 'isolation.level': 'read_committed' },
    { 'auto.offset.reset': 'earliest' },
  );
  let running = true;
  const loop = (async () => {
    await new Promise<void>((res, rej) => c.connect({ timeout: 10000 }, (e) => (e ? rej(new Error(e.message)) : res())));
    c.setDefaultConsumeTimeout(10); // a batch returns within 10 ms of its last message: arrival times stay close
    c.subscribe([topic]);
    while (running) {
      const batch = await new Promise<Kafka.Message[]>((res) => c.consume(64, (err, m) => (err ? setTimeout(() => res([]), 100) : res(m))));
      const now = Date.now();
      for (const m of batch) onMessage(m, now);
    }
    await new Promise<void>((res) => c.disconnect(() => res()));
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

async function runScenario(brokers: string, video: string, tmp: string, s: Scenario, seconds: number): Promise<{ line: string; p95: number }> {
  const name = `live-${s.sink}-${s.cameras}x${s.fps}`;
  const topic = `${name}-frames`;
  const outTopic = `${name}-out`;
  const outDir = path.join(tmp, name);
  await ensureTopic({ brokers }, topic, 4);
  if (s.sink === 'topic') await ensureTopic({ brokers }, outTopic, 4); // as the worker would; the reader subscribes before it starts
  const cams = [...Array(s.cameras).keys()].map((i) => `cam${i}`);
  const arrivals = new Map<string, number>(); // "cam/frame" -> when the output appeared
  let duplicates = 0;
  let reader: { stop: () => Promise<void> } | undefined;
  const watchers: ReturnType<typeof watch>[] = [];
  if (s.sink === 'topic') {
    reader = tail(brokers, outTopic, (m, at) => {
      const h = headerMap(m.headers as KafkaHeaders);
      const key = `${h.get('camera-id')}/${Number(h.get('frame-number'))}`;
      if (arrivals.has(key)) duplicates++;
      else arrivals.set(key, at);
    });
  } else {
    for (const cam of cams) {
      await fs.mkdir(path.join(outDir, cam), { recursive: true });
      // a file appears under its final name when the sink renames it, complete
      watchers.push(
        watch(path.join(outDir, cam), (_event, file) => {
          const m = /^(\d{8})\.png$/.exec(String(file ?? ''));
          if (m && !arrivals.has(`${cam}/${Number(m[1])}`)) arrivals.set(`${cam}/${Number(m[1])}`, Date.now());
        }),
      );
    }
  }
  const sinkArgs = s.sink === 'topic' ? ['--output-topic', outTopic] : ['-o', outDir];
  let ready: () => void = () => undefined;
  const listening = new Promise<void>((res) => (ready = res));
  const worker = runCli(
    ['process', '--fast', '--brokers', brokers, '--topic', topic, '--group', `g-${name}`, ...sinkArgs, '--idle-exit', '6', '--json', '--metrics-port', '0', '--no-status'],
    (line) => line.startsWith('metrics:') && ready(),
  );
  await Promise.race([listening, worker]);
  await new Promise((r) => setTimeout(r, 3000)); // the worker joins its group
  const captures = cams.map((cam) =>
    runCli(['capture', '--video', video, '--camera-id', cam, '--brokers', brokers, '--topic', topic, '--fps', String(s.fps), '--loop', '--max-frames', String(s.fps * seconds), '--json']),
  );
  const sent = (await Promise.all(captures)).reduce((n, c) => n + (JSON.parse(c.stdout) as { sent: number }).sent, 0);
  const w = await worker;
  if (w.code !== 0) throw new Error(`worker failed (${w.code}): ${w.stderr.slice(-400)}`);
  const summary = JSON.parse(w.stdout) as { succeeded: number; depth: { mean: number; max: number }; latencyMs: { p95: number }; transactions?: { committed: number } };
  await reader?.stop();
  for (const x of watchers) x.close();

  // capture timestamps from the frame topic
  const captured = new Map<string, number>();
  const all = tail(brokers, topic, (m) => {
    const f = decodeFrameMessage({ topic: m.topic, partition: m.partition, offset: m.offset, key: m.key, value: m.value ?? null, headers: m.headers as KafkaHeaders });
    captured.set(`${f.cameraId}/${f.frameNumber}`, f.timestampMs);
  });
  const deadline = Date.now() + 20000;
  while (captured.size < sent && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  await all.stop();
  const start = Math.min(...captured.values());
  const lat: number[] = [];
  for (const [k, ts] of captured) {
    const at = arrivals.get(k);
    if (at !== undefined && ts >= start + WARMUP_MS) lat.push(at - ts);
  }
  lat.sort((a, b) => a - b);
  const missing = [...captured.keys()].filter((k) => !arrivals.has(k)).length;
  const tx = summary.transactions ? `, ${summary.transactions.committed} transactions` : '';
  const line =
    `${String(s.cameras)} x ${String(s.fps).padStart(2)} fps -> ${s.sink.padEnd(5)}: sent ${sent}, out ${arrivals.size}, missing ${missing}` +
    `${s.sink === 'topic' ? `, duplicates ${duplicates}` : ''}; ` +
    `latency after ${WARMUP_MS / 1000} s p50 ${percentile(lat, 0.5).toFixed(0)} p95 ${percentile(lat, 0.95).toFixed(0)} p99 ${percentile(lat, 0.99).toFixed(0)} ms ` +
    `(${lat.length} frames); depth mean ${summary.depth.mean} max ${summary.depth.max}${tx}`;
  return { line, p95: percentile(lat, 0.95) };
}

async function main(): Promise<void> {
  const testdata = path.resolve(arg('testdata', path.join(projectRoot, '..', 'shared', 'testdata')));
  const video = path.join(testdata, 'video', 'dance-twirl.mp4');
  if (!existsSync(video)) throw new Error(`${video} not found (pass --testdata DIR)`);
  const seconds = Number(arg('seconds', process.env.BGRM_LIVE_SECONDS ?? '40'));
  const port = Number(arg('port', '39192'));
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'bgrm-bench-live-'));
  const brokers = execFileSync('bash', [kafka, 'start', '--port', String(port)], { encoding: 'utf8' }).trim();
  try {
    const models = await benchModels(tmp, video);
    const floatMs = 1000 / (await modelOnly(models.float, 2, 20));
    console.log(
      `live benchmark: dance-twirl.mp4 (854x480) looped, ${seconds} s per run, --fast worker (${models.int8Note}), ${os.availableParallelism()} cores; ` +
        `float u2netp model-only single-frame latency ${floatMs.toFixed(0)} ms (2 threads, this run)`,
    );
    const scenarios: Scenario[] = [
      { cameras: 1, fps: 12, sink: 'files' },
      { cameras: 2, fps: 6, sink: 'files' },
      { cameras: 1, fps: 12, sink: 'topic' },
      { cameras: 2, fps: 6, sink: 'topic' },
    ];
    for (const s of scenarios) {
      const { line, p95 } = await runScenario(brokers, video, tmp, s, seconds);
      const bound = s.sink === 'files' ? 2 : 3;
      console.log(`  ${line}; p95 / model-only x${(p95 / floatMs).toFixed(2)} (bound x${bound})`);
    }
  } finally {
    execFileSync('bash', [kafka, 'stop', '--port', String(port)]);
    await fs.rm(tmp, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(`bench:live failed: ${(err as Error).message}`);
  process.exit(1);
});
