// The exactly-once unit (kafka/exactly-once.ts: the group reader and the transactional producer as
// one) against an in-memory broker: each case ends with what a real broker
// would hold, every input frame once in the output topic, each bad message once in the dead-letter
// topic, and the group's committed offsets at the end of each partition. No broker, no native addon.
import { encodeFrameMessage } from '../../src/lib/kafka/messages';
import type { ProcessResult } from '../../src/lib/native';
import { ExactlyOnce } from '../../src/lib/kafka/exactly-once';
import { abandonedConsumers, type KafkaFrame } from '../../src/lib/kafka/group-reader';
import { KafkaFrameSource } from '../../src/lib/sources/kafka';
import { FakeBroker, kafkaError, type FakeConsumer } from '../helpers/fake-kafka';

const IN = 'frames';
const OUT = 'cutouts';
const DLQ = 'frames.dlq';
const GROUP = 'workers';
const PER_PARTITION = 6;

/** Two partitions of frames (camera c0 on partition 0, c1 on 1), and one message that is not a frame on partition 1 at `badAt`. */
function brokerWithFrames(badAt = 3): FakeBroker {
  const broker = new FakeBroker();
  broker.createTopic(IN, 2);
  for (let p = 0; p < 2; p++) {
    for (let i = 0; i < PER_PARTITION; i++) {
      if (p === 1 && i === badAt) broker.append(IN, 1, { key: 'c1', value: Buffer.from('not a frame') });
      const m = encodeFrameMessage({ cameraId: `c${p}`, frameNumber: i, timestampMs: Date.now(), width: 4, height: 4, encoding: 'jpeg', quality: 80 }, Buffer.from([0xff, 0xd8, p, i]), 'binary');
      broker.append(IN, p, { key: m.key, value: m.value, headers: m.headers as { [key: string]: string }[] });
    }
  }
  return broker;
}

interface WorkerHooks {
  /** Called after each frame is settled (written and marked done), with the count so far. */
  afterSettle?: (settled: number, unit: ExactlyOnce) => void | Promise<void>;
  /** Frames read but not yet settled at once (the pipeline's window). */
  depth?: number;
  /** How long leaving the group may take (GroupReaderOptions.closeTimeoutMs). */
  closeTimeoutMs?: number;
}

/** One worker as the pipeline drives it: frames in source order, each written then settled; an error frame dead-lettered. */
async function runWorker(broker: FakeBroker, workerId: string, hooks: WorkerHooks = {}, outputTopic = OUT): Promise<ExactlyOnce> {
  const clients = broker.clients();
  const unit = new ExactlyOnce({
    brokers: 'fake:9092',
    topic: IN,
    group: GROUP,
    idleExitMs: 300,
    batchSize: 4,
    outputTopic,
    dlqTopic: DLQ,
    partitions: 2,
    transactionalId: `bgrm-${GROUP}-${workerId}`,
    workerId,
    model: 'u2netp',
    content: 'mask/png',
    maxMessageBytes: 1_000_000,
    batchFrames: 1000, // the transaction stays open until the timer (or a test) ends it
    batchMs: 150,
    liveCommitMs: 150,
    clients,
    closeTimeoutMs: hooks.closeTimeoutMs,
  });
  await unit.open();
  const window: KafkaFrame[] = [];
  let settled = 0;
  const settle = async (frame: KafkaFrame) => {
    if (frame.error) await unit.settle(frame, frame.error);
    else {
      const result = { data: Buffer.from(`cut-out of ${frame.name}`), width: 4, height: 4, timings: { totalMs: 1 }, modelRuns: 1, regionRuns: 0 } as unknown as ProcessResult;
      await unit.sink.write({ frame, result });
      await unit.settle(frame);
    }
    await hooks.afterSettle?.(++settled, unit);
  };
  try {
    for await (const f of unit.source.frames()) {
      window.push(f as KafkaFrame);
      if (window.length > (hooks.depth ?? 1) - 1) await settle(window.shift()!);
    }
    for (const f of window) await settle(f);
    await unit.sink.close();
  } catch (err) {
    await unit.sink.abort?.();
    throw err;
  } finally {
    await unit.source.close?.();
  }
  return unit;
}

/** What the broker holds at the end: every frame once, the bad message once, offsets at the ends. */
function expectExactlyOnce(broker: FakeBroker): void {
  const names = broker.messages(OUT).map((m) => m.value!.toString().replace('cut-out of ', ''));
  const expected = [0, 1].flatMap((p) => Array.from({ length: PER_PARTITION }, (_, i) => `c${p}/${String(i).padStart(8, '0')}`));
  expect([...names].sort()).toEqual(expected.sort());
  const dead = broker.messages(DLQ);
  expect(dead.map((m) => m.value!.toString())).toEqual(['not a frame']);
  expect(Object.assign({}, ...dead[0].headers!)).toMatchObject({ 'bgrm-error-code': 'ERR_BAD_MESSAGE', 'bgrm-source': 'frames[1]@3' });
  expect(broker.offsetsOf(GROUP)).toEqual({ [`${IN}:0`]: PER_PARTITION, [`${IN}:1`]: PER_PARTITION + 1 });
}

describe('exactly-once worker against an in-memory broker', () => {
  it('a clean run: outputs, the dead letter and the offsets committed together', async () => {
    const broker = brokerWithFrames();
    const sink = await runWorker(broker, 'w1');
    expectExactlyOnce(broker);
    expect(sink.abortedTransactions).toBe(0);
    expect(broker.transactions.committed).toBeGreaterThan(0);
  });

  it('a revocation mid-batch: the open transaction is aborted, the partition read again by its new owner', async () => {
    const broker = brokerWithFrames();
    const first = await runWorker(broker, 'w1', {
      afterSettle: (n) => {
        // partition 1 moves away while this worker's transaction holds some of its outputs
        if (n === 8) broker.pendingRevoke = [{ topic: IN, partition: 1 }];
      },
    });
    expect(first.abortedTransactions).toBeGreaterThan(0);
    const before = broker.offsetsOf(GROUP)[`${IN}:1`] ?? 0;
    expect(before).toBeLessThan(PER_PARTITION + 1); // what w1 held of partition 1 was never committed
    await runWorker(broker, 'w2'); // the partition's new owner
    expectExactlyOnce(broker);
  });

  it('a commit that fails retriably, then succeeds: retried, never aborted', async () => {
    const broker = brokerWithFrames();
    broker.failures.push({ call: 'commit', error: kafkaError(15, 'Broker: Coordinator not available', { isRetriable: true }) });
    const sink = await runWorker(broker, 'w1');
    expect(broker.failures).toHaveLength(0);
    expect(sink.abortedTransactions).toBe(0);
    expectExactlyOnce(broker);
  });

  it('a fenced producer: a new producer takes the transactional id, the frames of the lost transaction are read again', async () => {
    const broker = brokerWithFrames();
    let zombie = false;
    const sink = await runWorker(broker, 'w1', {
      afterSettle: async (n) => {
        if (n !== 5 || zombie) return;
        zombie = true; // another instance with the same worker id starts: it fences this one
        const other = broker.clients().producer({ 'transactional.id': `bgrm-${GROUP}-w1` });
        await new Promise<void>((resolve) => other.initTransactions(1000, () => resolve()));
      },
    });
    expect(zombie).toBe(true);
    expect(sink.abortedTransactions).toBeGreaterThan(0);
    expectExactlyOnce(broker);
  });

  it('a rewind while frames are in flight: frames of the void epoch are dropped and come again', async () => {
    const broker = brokerWithFrames();
    // the commit needs an abort: the source rewinds while the window holds frames read before it
    broker.failures.push({ call: 'commit', error: kafkaError(48, 'Broker: Invalid transition', { isTxnRequiresAbort: true }) });
    const epochs = new Set<number>();
    const sink = await runWorker(broker, 'w1', { depth: 4, afterSettle: (_n, unit) => void epochs.add(unit.epoch) });
    expect(epochs.size).toBeGreaterThan(1);
    expect(sink.abortedTransactions).toBe(1);
    expectExactlyOnce(broker);
  });

  it('a dead letter inside an aborted transaction is written once, when the frames are read again', async () => {
    const broker = brokerWithFrames(1);
    // the first commit (holding the dead letter) needs an abort
    broker.failures.push({ call: 'sendOffsets', error: kafkaError(48, 'Broker: Invalid transition', { isTxnRequiresAbort: true }) });
    const sink = await runWorker(broker, 'w1', { depth: 2 });
    expect(sink.abortedTransactions).toBe(1);
    const dead = broker.messages(DLQ);
    expect(dead).toHaveLength(1);
    expect(Object.assign({}, ...dead[0].headers!)['bgrm-source']).toBe('frames[1]@1');
    expect(broker.messages(OUT)).toHaveLength(2 * PER_PARTITION);
    expect(broker.offsetsOf(GROUP)).toEqual({ [`${IN}:0`]: PER_PARTITION, [`${IN}:1`]: PER_PARTITION + 1 });
  });

  it('an output topic the ACLs refuse: the run ends naming it, with nothing committed, even when no frame follows the failed commit', async () => {
    const broker = brokerWithFrames();
    broker.deniedTopics.add('denied-out');
    // every frame is settled within milliseconds, so the commit that fails is the timer's, after the last frame
    await expect(runWorker(broker, 'w1', {}, 'denied-out')).rejects.toMatchObject({ code: 'ERR_KAFKA_TOPIC_DENIED' });
    expect(broker.messages('denied-out')).toHaveLength(0);
    expect(broker.offsetsOf(GROUP)).toEqual({});
    // a worker allowed to write gets every frame
    await runWorker(broker, 'w2');
    expectExactlyOnce(broker);
  });
});

describe('leaving the group (a consumer closes as node-rdkafka closes one)', () => {
  /** Runs `fn` with stderr captured; returns what it wrote there and how long it took. */
  async function capturing(fn: () => Promise<unknown>): Promise<{ stderr: string; ms: number }> {
    const write = process.stderr.write.bind(process.stderr);
    let stderr = '';
    process.stderr.write = ((chunk: string | Uint8Array) => ((stderr += chunk.toString()), true)) as typeof process.stderr.write;
    const started = Date.now();
    try {
      await fn();
    } finally {
      process.stderr.write = write;
    }
    return { stderr, ms: Date.now() - started };
  }

  it('exactly-once worker: the last revocation, while node-rdkafka says protocol NONE, gives the partitions up incrementally and the close ends', async () => {
    const broker = brokerWithFrames();
    const before = abandonedConsumers();
    const { stderr, ms } = await capturing(() => runWorker(broker, 'w1'));
    expectExactlyOnce(broker);
    const consumer = broker.consumers[0] as unknown as FakeConsumer;
    expect(consumer.assignments()).toEqual([]); // every partition given up
    expect(consumer.refusedUnassigns).toBe(0); // never the eager unassign that librdkafka refuses
    expect(abandonedConsumers()).toBe(before);
    expect(stderr).not.toMatch(/did not leave group/);
    expect(ms).toBeLessThan(10000);
  });

  it('at-least-once source: the same, after committing what is done', async () => {
    const broker = brokerWithFrames();
    const source = new KafkaFrameSource({ brokers: 'fake:9092', topic: IN, group: GROUP, idleExitMs: 300, clients: broker.clients() });
    let n = 0;
    const { stderr } = await capturing(async () => {
      for await (const f of source.frames()) {
        n++;
        source.markDone(f as KafkaFrame);
      }
      await source.close();
    });
    expect(n).toBe(2 * PER_PARTITION + 1);
    const consumer = broker.consumers[0] as unknown as FakeConsumer;
    expect(consumer.assignments()).toEqual([]);
    expect(consumer.refusedUnassigns).toBe(0);
    expect(broker.offsetsOf(GROUP)).toEqual({ [`${IN}:0`]: PER_PARTITION, [`${IN}:1`]: PER_PARTITION + 1 });
    expect(stderr).not.toMatch(/did not leave group/);
  });

  it('a close that never finishes is given up after the limit, with a warning, and counted', async () => {
    const broker = brokerWithFrames();
    broker.closeHangs = true;
    const before = abandonedConsumers();
    const { stderr, ms } = await capturing(() => runWorker(broker, 'w1', { closeTimeoutMs: 300 }));
    expectExactlyOnce(broker); // committed before the close: nothing lost
    expect(stderr).toMatch(/did not leave group workers within 0\.3 s/);
    expect(abandonedConsumers()).toBe(before + 1);
    expect(ms).toBeLessThan(10000);
  });
});
