// bgrm serve: the HTTP API, Prometheus metrics and the live dashboard of the Kafka pipeline.
import { Command, Flags } from '@oclif/core';
import { errorCode, errorMessage } from '../lib/errors';
import { kafkaClient, kafkaClientFlags } from '../lib/kafka/flags';
import { DEFAULT_MODEL } from '../lib/models';
import { DEFAULT_STATUS_TOPIC } from '../lib/kafka/messages';

export default class Serve extends Command {
  static description = 'Serve the model over HTTP (POST /v1/remove), /metrics, /healthz, /readyz, and a live dashboard of the Kafka pipeline at /';

  static examples = [
    '<%= config.bin %> serve',
    '<%= config.bin %> serve --port 8080 --token "$BGRM_TOKEN"',
    '<%= config.bin %> serve --brokers 127.0.0.1:9092 --topic frames --output-topic cutouts',
    'curl --data-binary @photo.jpg -H "Content-Type: image/jpeg" http://127.0.0.1:8080/v1/remove -o cutout.png',
  ];

  static flags = {
    host: Flags.string({ description: 'address to listen on (0.0.0.0 exposes the server to the network: set --token)', default: '127.0.0.1' }),
    port: Flags.integer({ description: 'port (0: any free port)', min: 0, max: 65535, default: 8080 }),
    token: Flags.string({ description: 'require this bearer token on every route but /healthz (or set BGRM_TOKEN)', env: 'BGRM_TOKEN' }),
    'max-body': Flags.integer({ description: 'largest request body in bytes; larger ones get 413 before they are read whole', min: 1024, default: 20 * 1024 * 1024 }),
    'max-pixels': Flags.integer({ description: 'largest image, in pixels (413 beyond)', min: 1, default: 40_000_000 }),
    'max-side': Flags.integer({ description: 'largest image width or height (413 beyond)', min: 16, default: 16384 }),
    concurrency: Flags.integer({ description: 'requests inside the native core at once (default: one per core)', min: 1, max: 64 }),
    queue: Flags.integer({ description: 'requests waiting for a slot; beyond them, 503 with Retry-After', min: 0, max: 10000, default: 32 }),
    model: Flags.string({ char: 'm', description: 'default model name (bgrm models list)', default: DEFAULT_MODEL }),
    device: Flags.string({ options: ['cpu', 'cuda'], default: 'cpu' }),
    threads: Flags.integer({ description: 'one model run with this many threads (default: one single-threaded run per core)', min: 1 }),
    'png-level': Flags.integer({ min: 0, max: 12, default: 1 }),
    brokers: Flags.string({ description: 'Kafka bootstrap servers of the pipeline to watch', aliases: ['kafka-brokers'], helpGroup: 'PIPELINE' }),
    topic: Flags.string({ description: 'the frame topic (previews of mask outputs read their input frame from it)', helpGroup: 'PIPELINE' }),
    'output-topic': Flags.string({ description: 'the workers\' output topic (read_committed) for live previews', helpGroup: 'PIPELINE' }),
    'status-topic': Flags.string({ description: 'the workers\' status topic', default: DEFAULT_STATUS_TOPIC, helpGroup: 'PIPELINE' }),
    'connect-timeout': Flags.integer({ description: 'seconds to wait for the broker', min: 1, default: 10, helpGroup: 'PIPELINE' }),
    ...kafkaClientFlags,
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Serve);
    try {
      const kafka = kafkaClient(flags);
      const [{ startServer }, { defaultThreads }] = await Promise.all([import('../lib/serve/server'), import('../lib/segmenter')]); // heavy: loaded when serving
      const server = await startServer({
        host: flags.host,
        port: flags.port,
        token: flags.token || undefined,
        maxBody: flags['max-body'],
        maxPixels: flags['max-pixels'],
        maxSide: flags['max-side'],
        concurrency: flags.concurrency ?? defaultThreads(),
        queue: flags.queue,
        model: flags.model,
        device: flags.device as 'cpu' | 'cuda',
        threads: flags.threads,
        pngLevel: flags['png-level'],
        brokers: kafka.brokers,
        kafkaSettings: kafka.settings,
        topic: flags.topic,
        outputTopic: flags['output-topic'],
        statusTopic: kafka.brokers ? flags['status-topic'] : undefined,
        connectTimeoutMs: flags['connect-timeout'] * 1000,
        version: this.config.version,
      });
      process.stderr.write(`bgrm serve: ${server.url}/ (dashboard), ${server.url}/v1/remove, ${server.url}/metrics\n`);
      if (flags.host !== '127.0.0.1' && flags.host !== 'localhost' && !flags.token) {
        process.stderr.write('warning: listening beyond this machine without --token: anyone who can reach it can use it\n');
      }
      await new Promise<void>((resolve) => {
        const stop = () => resolve();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      process.stderr.write('bgrm serve: stopping\n');
      await server.close();
    } catch (err) {
      const code = errorCode(err);
      this.error(`${errorMessage(err)} [${code}]`, { exit: code === 'ERR_USAGE' ? 2 : 1 });
    }
  }
}
