// serve's Kafka feed: one read_committed consumer on the status and output topics (a topic that does
// not exist yet is looked for again every second), and a second consumer that fetches a frame by
// its offset (the input of a mask). It only reads; what it reads goes to the dashboard's model.
import * as Kafka from 'node-rdkafka';
import { BgrmError } from '../errors';
import { baseConfig, clientConfig, connectClient, ensureTopic, type KafkaConnection } from '../kafka/client';
import { deniedError } from '../kafka/errors';
import { decodeFrameMessage, incoming, type IncomingMessage, type KafkaHeaders } from '../kafka/messages';
import { scrub, type KafkaSettings } from '../kafka/settings';

/** The Kafka pipeline to watch: brokers, frame topic, output topic, status topic. */
export interface StateOptions {
  brokers?: string;
  topic?: string;
  outputTopic?: string;
  statusTopic?: string;
  connectTimeoutMs?: number;
  /** The user's Kafka client settings (--kafka-config, -X, ...). */
  kafkaSettings?: KafkaSettings;
}

export interface FeedHandlers {
  onStatus(m: IncomingMessage): void;
  onOutput(m: IncomingMessage): void;
}

export class KafkaFeed {
  private consumer?: Kafka.KafkaConsumer;
  private fetcher?: Kafka.KafkaConsumer;
  private fetching = false;
  private running = false;
  private loop?: Promise<void>;
  /** Why the feed shows nothing (no broker, refused), for the dashboard. */
  error?: string;
  /** Topics to read that do not exist yet (an output topic before its first worker starts). */
  waitingFor: string[] = [];
  private subscribed: string[] = [];
  private readonly madeHere = new Set<string>();
  private readonly conn: KafkaConnection;

  constructor(
    private readonly opts: StateOptions,
    private readonly handlers: FeedHandlers,
  ) {
    this.conn = { brokers: opts.brokers ?? '', clientId: 'bgrm-serve', connectTimeoutMs: opts.connectTimeoutMs, settings: opts.kafkaSettings };
  }

  get connected(): boolean {
    return !!this.consumer;
  }

  /** Can frames of the input topic be fetched (to show a mask over its frame)? */
  get fetchesFrames(): boolean {
    return !!this.fetcher;
  }

  async start(): Promise<void> {
    const conn = this.conn;
    const consumer = new Kafka.KafkaConsumer(
      clientConfig(conn, {
        ...baseConfig(conn),
        'group.id': `bgrm-serve-${process.pid}-${Date.now()}`,
        'enable.auto.commit': false,
        'isolation.level': 'read_committed',
        'topic.metadata.refresh.interval.ms': 2000,
        'queued.max.messages.kbytes': 16 * 1024,
      }),
      { 'auto.offset.reset': 'latest' },
    );
    try {
      await connectClient(consumer, conn);
      // The status topic is bgrm's own: made here as a worker would make it, so that the order in
      // which serve and the workers start does not matter.
      if (this.opts.statusTopic) {
        await ensureTopic(conn, this.opts.statusTopic, 1, 'READ and DESCRIBE');
        this.madeHere.add(this.opts.statusTopic); // listed by the broker's metadata a moment later
      }
    } catch (err) {
      // The API keeps working without the broker; the dashboard says why the pipeline view is empty.
      this.error = err instanceof BgrmError ? err.message : `cannot reach Kafka at ${this.opts.brokers}: ${scrub((err as Error).message, conn.settings)}`;
      return;
    }
    consumer.setDefaultConsumeTimeout(500);
    this.consumer = consumer;
    await this.subscribeExisting();
    if (this.opts.topic) {
      const fetcher = new Kafka.KafkaConsumer(clientConfig(conn, { ...baseConfig(conn), 'group.id': `bgrm-serve-fetch-${process.pid}`, 'enable.auto.commit': false }), {});
      await new Promise<void>((resolve) => fetcher.connect({ timeout: 10000 }, (err) => (err ? resolve() : ((this.fetcher = fetcher), resolve()))));
      this.fetcher?.setDefaultConsumeTimeout(5000);
    }
    this.running = true;
    this.loop = this.consumeLoop();
  }

  /**
   * Subscribes to the watched topics that exist; those that do not yet (the output topic before
   * the first worker made it) are listed in the snapshot and looked for again every second.
   */
  private async subscribeExisting(): Promise<void> {
    const consumer = this.consumer;
    if (!consumer) return;
    const wanted = [this.opts.statusTopic, this.opts.outputTopic].filter((t): t is string => !!t);
    const existing = await new Promise<Set<string> | undefined>((resolve) =>
      consumer.getMetadata({ timeout: 5000 }, (err, md) => resolve(err ? undefined : new Set(md.topics.map((t) => t.name)))),
    );
    if (!existing) return; // the broker is away: try again at the next tick
    const exists = (t: string) => existing.has(t) || this.madeHere.has(t);
    const present = wanted.filter(exists);
    this.waitingFor = wanted.filter((t) => !exists(t));
    if (present.join(',') === this.subscribed.join(',')) return;
    if (this.subscribed.length > 0) consumer.unsubscribe();
    if (present.length > 0) consumer.subscribe(present);
    this.subscribed = present;
  }

  private async consumeLoop(): Promise<void> {
    let lookedAt = Date.now();
    while (this.running && this.consumer) {
      if (this.waitingFor.length > 0 && Date.now() - lookedAt >= 1000) {
        lookedAt = Date.now();
        await this.subscribeExisting();
      }
      if (this.subscribed.length === 0) {
        await new Promise((r) => setTimeout(r, 250));
        continue;
      }
      const batch = await new Promise<Kafka.Message[]>((resolve) =>
        this.consumer!.consume(32, (err, msgs) => {
          if (err) {
            if (err.code !== Kafka.CODES.ERRORS.ERR_UNKNOWN_TOPIC_OR_PART) {
              this.error = deniedError(this.conn, err, { topic: this.subscribed.join(', '), topicOps: 'READ and DESCRIBE' })?.message ?? scrub(err.message, this.conn.settings);
            }
            return setTimeout(() => resolve([]), 500);
          }
          this.error = undefined;
          resolve(msgs);
        }),
      );
      for (const m of batch) {
        const message = incoming(m);
        if (m.topic === this.opts.statusTopic) this.handlers.onStatus(message);
        else this.handlers.onOutput(message);
      }
    }
  }

  /** The frame bytes of an input message, read by its offset; undefined when busy (one fetch at a time) or unreadable. */
  async fetchFrame(source: { topic: string; partition: number; offset: number }): Promise<Buffer | undefined> {
    const fetcher = this.fetcher;
    if (!fetcher || this.fetching || source.topic !== this.opts.topic) return undefined;
    this.fetching = true;
    try {
      fetcher.assign([{ topic: source.topic, partition: source.partition, offset: source.offset }]);
      const msgs = await new Promise<Kafka.Message[]>((resolve) => fetcher.consume(1, (err, ms) => resolve(err ? [] : ms)));
      const m = msgs.find((x) => x.offset === source.offset && x.partition === source.partition);
      return m?.value ? decodeFrameMessage({ ...incoming(m), headers: m.headers as KafkaHeaders }).bytes : undefined;
    } catch {
      return undefined; // a frame that cannot be read is shown as its mask alone
    } finally {
      try {
        fetcher.unassign();
      } catch {
        // disconnected
      }
      this.fetching = false;
    }
  }

  async close(): Promise<void> {
    this.running = false;
    await this.loop;
    for (const c of [this.consumer, this.fetcher]) {
      if (c) await new Promise<void>((resolve) => c.disconnect(() => resolve()));
    }
    this.consumer = undefined;
    this.fetcher = undefined;
  }
}
