// bgrm capture: a camera or a video file into a Kafka topic, one JPEG message per frame.
import { Command, Flags } from '@oclif/core';
import { errorCode, errorMessage } from '../lib/errors';
import { stopOnSignals } from '../lib/stop';
import { kafkaClient, kafkaClientFlags } from '../lib/kafka/flags';
import { isCameraId } from '../lib/kafka/messages';

export default class Capture extends Command {
  static description = 'Send frames from a video file or a camera to a Kafka topic (JPEG, keyed by camera id)';

  static examples = [
    '<%= config.bin %> capture --video clip.mp4 --camera-id cam1 --brokers 127.0.0.1:9092 --topic frames',
    '<%= config.bin %> capture --camera 0 --camera-id door --brokers 127.0.0.1:9092 --topic frames --fps 15',
    '<%= config.bin %> capture --video clip.mp4 --camera-id cam1 --topic frames --fps 0 --loop --max-frames 1000',
  ];

  static flags = {
    video: Flags.string({ description: 'a video file to read', exclusive: ['camera'] }),
    camera: Flags.string({ description: 'a camera: index (0 = /dev/video0) or device path', exclusive: ['video'] }),
    'camera-id': Flags.string({ description: 'camera id: the message key (letters, digits, . _ -)', required: true }),
    brokers: Flags.string({ description: 'Kafka bootstrap servers, host:port[,host:port] [default: --kafka-config\'s bootstrap.servers, else 127.0.0.1:9092]', aliases: ['kafka-brokers'] }),
    topic: Flags.string({ description: 'topic to send frames to', required: true }),
    fps: Flags.integer({ description: 'pace to this many frames/s (0: as fast as possible; default: the video rate)', min: 0 }),
    quality: Flags.integer({ description: 'JPEG quality', min: 1, max: 100, default: 85 }),
    loop: Flags.boolean({ description: 'start the video again at its end', default: false }),
    'max-frames': Flags.integer({ description: 'stop after this many frames', min: 1 }),
    partitions: Flags.integer({ description: 'partitions when the topic is created', min: 1, default: 4 }),
    format: Flags.string({ description: 'message format: binary (JPEG value, headers) or seed-json (the old JSON)', options: ['binary', 'seed-json'], default: 'binary' }),
    'connect-timeout': Flags.integer({ description: 'seconds to wait for the broker', min: 1, default: 10 }),
    json: Flags.boolean({ description: 'print a machine-readable summary', default: false }),
    ...kafkaClientFlags,
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Capture);
    if (!isCameraId(flags['camera-id'])) {
      this.error("--camera-id may hold letters, digits, '.', '_' and '-' (at most 128) [ERR_USAGE]", { exit: 2 });
    }
    const signal = stopOnSignals();
    const tty = !!process.stderr.isTTY && !flags.json;
    let last = 0;
    try {
      // loaded here: node-rdkafka and the native core stay out of other commands (oclif reads every command file)
      const { runCapture } = await import('../lib/capture');
      const s = await runCapture({
        ...kafkaClient(flags, '127.0.0.1:9092'),
        connectTimeoutMs: flags['connect-timeout'] * 1000,
        clientId: `bgrm-capture-${flags['camera-id']}`,
        video: flags.video,
        camera: flags.camera,
        cameraId: flags['camera-id'],
        topic: flags.topic,
        fps: flags.fps,
        quality: flags.quality,
        loop: flags.loop,
        maxFrames: flags['max-frames'],
        partitions: flags.partitions,
        format: flags.format as 'binary' | 'seed-json',
        signal,
        onProgress: (p) => {
          if (!tty || Date.now() - last < 200) return;
          last = Date.now();
          process.stderr.write(`\r\x1b[2K${p.sent} frames sent  ${((p.sent * 1000) / Math.max(1, p.elapsedMs)).toFixed(1)} fps${p.failed ? `  ${p.failed} failed` : ''}`);
        },
      });
      if (tty) process.stderr.write('\n');
      if (flags.json) this.log(JSON.stringify(s, null, 2));
      else this.logToStderr(`${s.sent} frames sent to ${s.topic} (${s.achievedFps.toFixed(1)} frames/s), ${s.failed} failed`);
      for (const f of s.failures) this.logToStderr(`failed: ${f}`);
      if (s.failed > 0) this.exit(1);
      if (s.interrupted) this.exit(130);
    } catch (err) {
      const code = errorCode(err);
      this.error(`${errorMessage(err)} [${code}]`, { exit: code === 'ERR_USAGE' ? 2 : 1 });
    }
  }
}
