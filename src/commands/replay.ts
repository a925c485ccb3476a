// bgrm replay: reprocess a range of a Kafka frame topic (by offset or time) into a folder.
import { Command, Flags } from '@oclif/core';
import { errorCode, errorMessage } from '../lib/errors';
import { stopOnSignals } from '../lib/stop';
import { kafkaClient, kafkaClientFlags } from '../lib/kafka/flags';
import { DEFAULT_MODEL } from '../lib/models';
import { OUTPUT_FORMATS, chooseOutputFormat } from '../lib/output-format';
import { FLOW_PRESETS, PRESETS, presetOf, temporalSettings } from '../lib/render';
import { ProgressLine } from '../lib/progress';

function parseTime(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const ms = Date.parse(v);
  if (Number.isNaN(ms)) throw Object.assign(new Error(`${flag} '${v}' is not an ISO 8601 time (for example 2026-11-25T10:00:00Z)`), { code: 'ERR_USAGE' });
  return ms;
}

export default class Replay extends Command {
  static description = 'Reprocess a range of a Kafka frame topic (offsets or times) into a folder; stops at the end of the range';

  static examples = [
    '<%= config.bin %> replay --brokers 127.0.0.1:9092 --topic frames --from-offset 0 -o out/',
    '<%= config.bin %> replay --topic frames --from-time 2026-11-25T10:00:00Z --to-time 2026-11-25T10:05:00Z --camera-id door -o out/',
  ];

  static flags = {
    brokers: Flags.string({ description: 'Kafka bootstrap servers [default: --kafka-config\'s bootstrap.servers, else 127.0.0.1:9092]', aliases: ['kafka-brokers'] }),
    topic: Flags.string({ description: 'the frame topic', required: true }),
    'from-offset': Flags.integer({ description: 'first offset (each selected partition)', min: 0, exclusive: ['from-time'] }),
    'from-time': Flags.string({ description: 'first message time, ISO 8601', exclusive: ['from-offset'] }),
    'to-offset': Flags.integer({ description: 'end offset, exclusive (default: the end when the replay starts)', min: 0, exclusive: ['to-time'] }),
    'to-time': Flags.string({ description: 'end time, exclusive, ISO 8601', exclusive: ['to-offset'] }),
    partition: Flags.integer({ description: 'only this partition (repeatable)', min: 0, multiple: true }),
    'camera-id': Flags.string({ description: 'only this camera (repeatable)', multiple: true }),
    output: Flags.string({ char: 'o', description: 'folder: DIR/<camera-id>/<frame-number>.png', required: true }),
    model: Flags.string({ char: 'm', description: `model name or .onnx path [default: ${DEFAULT_MODEL}; ${PRESETS.fast.model}-int8 with --fast, ${PRESETS.best.model}-int8 with --best]` }),
    device: Flags.string({ options: ['cpu', 'cuda'], default: 'cpu' }),
    threads: Flags.integer({ description: 'one model run with this many threads (default: one single-threaded run per core)', min: 1 }),
    format: Flags.string({ options: ['rgba', 'mask'], default: 'rgba' }),
    background: Flags.string({ description: 'composite onto a colour or an image file' }),
    temporal: Flags.boolean({ description: 'temporal matting per camera (default on; --no-temporal: every frame alone)', allowNo: true }),
    'keyframe-interval': Flags.string({ description: 'with temporal matting, run the model on every K-th frame only, or auto (default 1; auto with --fast)' }),
    fast: Flags.boolean({ description: "the same settings as a worker's --fast: u2netp-int8 when it is made, adaptive keyframes, patch flow", default: false, exclusive: ['best'] }),
    best: Flags.boolean({ description: "the same settings as a worker's --best: u2net-int8 when it is made, temporal matting, patch flow", default: false, exclusive: ['fast'] }),
    flow: Flags.string({ description: 'optical-flow preset for temporal matting (default patch)', options: [...FLOW_PRESETS] }),
    concurrency: Flags.integer({ description: 'frames in flight (default 4, more with keyframes: 10 with --fast)', min: 1, max: 64 }),
    'png-level': Flags.integer({ min: 0, max: 12, default: 1 }),
    'output-format': Flags.string({ description: 'image format of each frame: png (default), webp, or jpeg (needs --background or --format mask)', options: [...OUTPUT_FORMATS] }),
    'output-quality': Flags.integer({ description: 'lossy WebP at this quality (default lossless); JPEG quality (default 90)', min: 1, max: 100 }),
    'max-pixels': Flags.integer({ min: 1, default: 64 * 1024 * 1024 }),
    'connect-timeout': Flags.integer({ description: 'seconds to wait for the broker', min: 1, default: 10 }),
    json: Flags.boolean({ description: 'print a machine-readable summary', default: false }),
    ...kafkaClientFlags,
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Replay);
    const preset = presetOf(flags);
    const progress = new ProgressLine(process.stderr, !!process.stderr.isTTY && !flags.json);
    const signal = stopOnSignals();
    let summary;
    try {
      const { runReplay } = await import('../lib/replay'); // node-rdkafka: loaded when replaying
      summary = await runReplay({
        ...kafkaClient(flags, '127.0.0.1:9092'),
        connectTimeoutMs: flags['connect-timeout'] * 1000,
        topic: flags.topic,
        fromOffset: flags['from-offset'],
        fromTimeMs: parseTime('--from-time', flags['from-time']),
        toOffset: flags['to-offset'],
        toTimeMs: parseTime('--to-time', flags['to-time']),
        partitions: flags.partition,
        cameraIds: flags['camera-id'],
        output: flags.output,
        model: flags.model ?? (preset ? await (await import('../lib/quantize')).presetModel(`--${preset}` as const, PRESETS[preset].model, [], (m) => process.stderr.write(`${m}\n`)) : DEFAULT_MODEL),
        device: flags.device as 'cpu' | 'cuda',
        threads: flags.threads,
        format: flags.format as 'rgba' | 'mask',
        background: flags.background,
        ...chooseOutputFormat({ flag: flags['output-format'], quality: flags['output-quality'], format: flags.format as 'rgba' | 'mask', background: flags.background }),
        temporal: flags.temporal,
        ...temporalSettings({ preset, keyframeInterval: flags['keyframe-interval'], flow: flags.flow, concurrency: flags.concurrency }),
        pngLevel: flags['png-level'],
        maxPixels: flags['max-pixels'],
        signal,
        onProgress: (p) => progress.update(p),
      });
    } catch (err) {
      progress.done();
      const code = errorCode(err);
      this.error(`${errorMessage(err)} [${code}]`, { exit: code === 'ERR_USAGE' ? 2 : 1 });
    }
    progress.done();
    if (flags.json) this.log(JSON.stringify(summary, null, 2));
    else this.logToStderr(`${summary.succeeded}/${summary.frames} frames replayed from ${summary.topic} in ${summary.seconds.toFixed(2)} s -> ${summary.output}`);
    for (const f of summary.failures) this.logToStderr(`failed: ${f.origin}: ${f.message} [${f.code}]`);
    if (summary.interrupted) this.exit(130);
    if (summary.failed > 0) this.exit(1);
  }
}
