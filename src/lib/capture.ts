// Capture: frames from a video file or a camera, JPEG-encoded in the native core, sent to a Kafka
// topic keyed by camera id (one camera's frames stay in order on one partition).
import type * as Kafka from 'node-rdkafka';
import { BgrmError } from './errors';
import { connectProducer, ensureTopic, type KafkaConnection } from './kafka/client';
import { deniedError } from './kafka/errors';
import { encodeFrameMessage, type MessageFormat } from './kafka/messages';
import { native } from './native';
import { VideoSource } from './sources/video';

export interface CaptureJob extends KafkaConnection {
  video?: string;
  /** A camera index (0 -> /dev/video0) or a device path. */
  camera?: string;
  cameraId: string;
  topic: string;
  /** Pace to this many frames/s; 0 sends as fast as possible. Default: the video's own rate. */
  fps?: number;
  quality: number;
  loop: boolean;
  maxFrames?: number;
  partitions: number;
  format: MessageFormat;
  /** Deliveries awaited at most at once (backpressure on the producer). */
  maxInFlight?: number;
  signal?: AbortSignal;
  onProgress?: (p: { sent: number; failed: number; elapsedMs: number }) => void;
}

export interface CaptureSummary {
  cameraId: string;
  topic: string;
  topicCreated: boolean;
  sent: number;
  failed: number;
  failures: string[];
  seconds: number;
  achievedFps: number;
  interrupted: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runCapture(job: CaptureJob): Promise<CaptureSummary> {
  if (!!job.video === !!job.camera) throw new BgrmError('ERR_USAGE', 'give exactly one of --video FILE or --camera INDEX_OR_DEVICE');
  const input = job.video ?? (/^\d+$/.test(job.camera!) ? `/dev/video${job.camera}` : job.camera!);
  const inputArgs = job.camera ? ['-f', 'v4l2'] : [];
  const created = (await ensureTopic(job, job.topic, job.partitions)) === 'created';
  const producer = await connectProducer(job);
  const started = performance.now();
  const maxInFlight = job.maxInFlight ?? 64;
  let sent = 0;
  let failed = 0;
  let pending = 0;
  const failures: string[] = [];
  let wake: (() => void) | undefined;
  // A topic the cluster's ACLs refuse stops the capture at its first report (named, not a failure per frame).
  let denied: BgrmError | undefined;
  const wanted = { topic: job.topic, topicOps: 'WRITE and DESCRIBE' };
  producer.on('delivery-report', (err: Kafka.LibrdKafkaError | null) => {
    pending--;
    if (err) {
      failed++;
      denied ??= deniedError(job, err, wanted);
      if (failures.length < 100) failures.push(err.message);
    } else sent++;
    wake?.();
  });
  const waitBelow = async (n: number) => {
    while (pending > n) await new Promise<void>((r) => (wake = r));
  };

  let frameNumber = 0;
  let fps = job.fps;
  try {
    do {
      const source = await VideoSource.open(input, { inputArgs, maxFrames: job.maxFrames ? job.maxFrames - frameNumber : undefined });
      if (fps === undefined) fps = job.camera ? 0 : source.fps;
      for await (const frame of source.frames()) {
        if (denied) throw denied;
        if (job.signal?.aborted || (job.maxFrames !== undefined && frameNumber >= job.maxFrames)) break;
        if (fps > 0) {
          const due = started + (frameNumber * 1000) / fps;
          const now = performance.now();
          if (due > now) await sleep(due - now);
        }
        const { width, height } = frame.raw!;
        const jpeg = await native().encodeJpeg(frame.bytes, width, height, job.quality);
        const timestampMs = Date.now();
        const msg = encodeFrameMessage(
          { cameraId: job.cameraId, frameNumber, timestampMs, width, height, encoding: 'jpeg', quality: job.quality },
          jpeg,
          job.format,
        );
        await waitBelow(maxInFlight - 1);
        for (;;) {
          try {
            producer.produce(job.topic, null, msg.value, msg.key, msg.timestampMs, undefined, msg.headers as Kafka.MessageHeader[]);
            pending++;
            break;
          } catch (err) {
            // the local queue is full: wait for deliveries, then retry the same frame
            if ((err as Kafka.LibrdKafkaError).code !== -184 /* ERR__QUEUE_FULL */) throw deniedError(job, err as Kafka.LibrdKafkaError, wanted) ?? err;
            await sleep(20);
          }
        }
        frameNumber++;
        job.onProgress?.({ sent, failed, elapsedMs: performance.now() - started });
      }
    } while (job.loop && !job.signal?.aborted && (job.maxFrames === undefined || frameNumber < job.maxFrames));
  } finally {
    await new Promise<void>((resolve) => producer.flush(30000, () => resolve()));
    // delivery reports reach JavaScript after the flush itself: give them a bounded moment
    await Promise.race([waitBelow(0), sleep(5000)]);
    if (pending > 0) {
      // never silent: frames still unconfirmed after the flush are counted as failed
      failed += pending;
      failures.push(`${pending} frames were not confirmed by the broker within 35 s`);
      pending = 0;
    }
    await new Promise<void>((resolve) => producer.disconnect(() => resolve()));
  }
  if (denied) throw denied;
  const seconds = (performance.now() - started) / 1000;
  return {
    cameraId: job.cameraId,
    topic: job.topic,
    topicCreated: created,
    sent,
    failed,
    failures,
    seconds,
    achievedFps: seconds > 0 ? sent / seconds : 0,
    interrupted: !!job.signal?.aborted,
  };
}
