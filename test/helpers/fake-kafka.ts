// A Kafka broker in memory, for unit tests of the exactly-once worker without a real one. It keeps
// what a real broker would hold at the end: partitions of messages, each group's committed offsets,
// and transactions per transactional id (outputs and offsets become visible together at commit,
// nothing of an aborted one; a second producer with the same id fences the first). Its clients
// speak the part of node-rdkafka's API the worker uses. Test hooks: a revocation delivered at the
// next fetch, failures of the next transactional calls, topics the ACLs refuse, and a consumer close
// that never finishes. A consumer closes as node-rdkafka's does: a last revocation first, during
// which it reports the rebalance protocol as "NONE", and the close waits until the partitions are
// given up incrementally (librdkafka refuses an eager unassign in a cooperative group).
import { EventEmitter } from 'node:events';
import type * as Kafka from 'node-rdkafka';
import type { KafkaClients } from '../../src/lib/kafka/clients';

export interface StoredMessage {
  topic: string;
  partition: number;
  offset: number;
  key: Buffer | string | null;
  value: Buffer | null;
  headers?: { [key: string]: Buffer | string }[];
  timestamp: number;
}

type Callback<T = void> = (err: Kafka.LibrdKafkaError | null, value?: T) => void;

/** An error shaped as node-rdkafka's. */
export function kafkaError(code: number, message: string, flags: { isRetriable?: boolean; isFatal?: boolean; isTxnRequiresAbort?: boolean } = {}): Kafka.LibrdKafkaError {
  return Object.assign(new Error(message), { code, errno: code, origin: 'kafka', ...flags }) as unknown as Kafka.LibrdKafkaError;
}

const ASSIGN = -175;
const REVOKE = -174;
const key = (topic: string, partition: number) => `${topic}:${partition}`;

export class FakeBroker {
  readonly topics = new Map<string, StoredMessage[][]>();
  /** Committed offsets per group: "topic:partition" -> next offset to read. */
  readonly committed = new Map<string, Map<string, number>>();
  /** The producer that holds each transactional id now (an older one is fenced). */
  private readonly holders = new Map<string, FakeProducer>();
  /** Failures the next transactional calls meet, in order, by call name. */
  readonly failures: { call: 'commit' | 'sendOffsets'; error: Kafka.LibrdKafkaError }[] = [];
  /** Topics the cluster's ACLs refuse to this client: a produce fails in its delivery report (late), and so does the commit. */
  readonly deniedTopics = new Set<string>();
  /** Partitions revoked from the group's consumers at their next fetch. */
  pendingRevoke?: { topic: string; partition: number }[];
  /** Consumers never finish closing (librdkafka waiting on a rebalance for good). */
  closeHangs = false;
  readonly consumers: FakeConsumer[] = [];
  transactions = { committed: 0, aborted: 0 };

  createTopic(topic: string, partitions: number): 'exists' | 'created' {
    if (this.topics.has(topic)) return 'exists';
    this.topics.set(
      topic,
      Array.from({ length: partitions }, () => []),
    );
    return 'created';
  }

  /** Appends a message (not in a transaction: visible at once). */
  append(topic: string, partition: number, m: Omit<StoredMessage, 'topic' | 'partition' | 'offset' | 'timestamp'> & { timestamp?: number }): void {
    const p = this.topics.get(topic)?.[partition];
    if (!p) throw new Error(`fake broker: no ${topic}[${partition}]`);
    p.push({ ...m, topic, partition, offset: p.length, timestamp: m.timestamp ?? Date.now() });
  }

  messages(topic: string): StoredMessage[] {
    return (this.topics.get(topic) ?? []).flat();
  }

  offsetsOf(group: string): Record<string, number> {
    return Object.fromEntries(this.committed.get(group) ?? []);
  }

  /** Takes a transactional id for `producer`: the producer that held it is fenced, its open transaction aborted. */
  initTransactions(producer: FakeProducer): void {
    const old = this.holders.get(producer.transactionalId);
    if (old && old !== producer) {
      old.fenced = true;
      if (old.open) this.transactions.aborted++;
      old.open = undefined;
    }
    this.holders.set(producer.transactionalId, producer);
  }

  commit(t: OpenTransaction): void {
    for (const m of t.messages) {
      const parts = this.topics.get(m.topic);
      if (!parts) throw new Error(`fake broker: no topic ${m.topic}`);
      const partition = m.partition ?? hash(m.key) % parts.length;
      this.append(m.topic, partition, { key: m.key, value: m.value, headers: m.headers });
    }
    for (const { group, offsets } of t.offsets) {
      const g = this.committed.get(group) ?? new Map<string, number>();
      for (const o of offsets) g.set(key(o.topic, o.partition), o.offset);
      this.committed.set(group, g);
    }
    this.transactions.committed++;
  }

  takeFailure(call: 'commit' | 'sendOffsets'): Kafka.LibrdKafkaError | undefined {
    const i = this.failures.findIndex((f) => f.call === call);
    return i < 0 ? undefined : this.failures.splice(i, 1)[0].error;
  }

  clients(): KafkaClients {
    return {
      consumer: (config) => {
        const c = new FakeConsumer(this, config);
        this.consumers.push(c);
        return c as unknown as Kafka.KafkaConsumer;
      },
      producer: (config) => new FakeProducer(this, config) as unknown as Kafka.Producer,
      ensureTopic: async (_conn, topic, partitions) => this.createTopic(topic, partitions),
    };
  }
}

function hash(k: Buffer | string | null): number {
  const s = k === null ? '' : k.toString();
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) >>> 0;
  return h;
}

interface OpenTransaction {
  messages: { topic: string; partition: number | null; key: Buffer | string | null; value: Buffer | null; headers?: { [key: string]: Buffer | string }[] }[];
  offsets: { group: string; offsets: Kafka.TopicPartitionOffset[] }[];
}

class FakeClient extends EventEmitter {
  connect(_opts: unknown, cb?: Callback<unknown>): this {
    setImmediate(() => cb?.(null, {}));
    return this;
  }
  disconnect(cb?: () => void): this {
    setImmediate(() => cb?.());
    return this;
  }
}

export class FakeConsumer extends FakeClient {
  readonly group: string;
  private readonly rebalance: (err: Kafka.LibrdKafkaError, assignment: Kafka.Assignment[]) => void;
  private subscribed: string[] = [];
  private joined = false;
  private readonly positions = new Map<string, { topic: string; partition: number; offset: number }>();
  private timeoutMs = 1000;

  constructor(
    private readonly broker: FakeBroker,
    config: Kafka.ConsumerGlobalConfig,
  ) {
    super();
    this.group = String(config['group.id']);
    this.rebalance = config.rebalance_cb as unknown as (err: Kafka.LibrdKafkaError, assignment: Kafka.Assignment[]) => void;
  }

  /** Between disconnect() and its callback. */
  private closing = false;
  /** Eager unassign() calls, refused as librdkafka refuses them in a cooperative group. */
  refusedUnassigns = 0;

  subscribe(topics: string[]): this {
    this.subscribed = topics;
    return this;
  }
  rebalanceProtocol(): string {
    return this.closing ? 'NONE' : 'COOPERATIVE';
  }
  unassign(): this {
    this.refusedUnassigns++;
    throw kafkaError(-172, 'Changes to the current assignment must be made using incremental_assign() or incremental_unassign() when rebalance protocol type is COOPERATIVE');
  }
  override disconnect(cb?: () => void): this {
    this.closing = true;
    const held = this.assignments();
    if (held.length > 0) this.rebalance(kafkaError(REVOKE, 'revoke'), held);
    if (this.broker.closeHangs) return this; // never calls back
    const until = Date.now() + 5000; // a reader that never gives its partitions up: no callback either
    const check = () => {
      if (this.positions.size > 0) return void (Date.now() < until && setTimeout(check, 5));
      this.closing = false;
      cb?.();
    };
    setImmediate(check);
    return this;
  }
  incrementalAssign(list: Kafka.Assignment[]): this {
    for (const a of list) this.positions.set(key(a.topic, a.partition), { topic: a.topic, partition: a.partition, offset: this.committedOffset(a.topic, a.partition) ?? 0 });
    return this;
  }
  incrementalUnassign(list: Kafka.Assignment[]): this {
    for (const a of list) this.positions.delete(key(a.topic, a.partition));
    return this;
  }
  assignments(): Kafka.Assignment[] {
    return [...this.positions.values()].map(({ topic, partition }) => ({ topic, partition }));
  }
  setDefaultConsumeTimeout(ms: number): void {
    this.timeoutMs = ms;
  }

  private committedOffset(topic: string, partition: number): number | undefined {
    return this.broker.committed.get(this.group)?.get(key(topic, partition));
  }

  consume(n: number, cb: Callback<Kafka.Message[]>): void {
    setImmediate(() => {
      // the group's rebalances arrive during a fetch, as librdkafka delivers them
      if (!this.joined) {
        this.joined = true;
        const all = this.subscribed.flatMap((t) => (this.broker.topics.get(t) ?? []).map((_p, partition) => ({ topic: t, partition })));
        this.rebalance(kafkaError(ASSIGN, 'assign'), all);
      }
      if (this.broker.pendingRevoke) {
        const revoked = this.broker.pendingRevoke.filter((r) => this.positions.has(key(r.topic, r.partition)));
        this.broker.pendingRevoke = undefined;
        if (revoked.length > 0) this.rebalance(kafkaError(REVOKE, 'revoke'), revoked);
      }
      const out: Kafka.Message[] = [];
      for (const pos of this.positions.values()) {
        const log = this.broker.topics.get(pos.topic)?.[pos.partition] ?? [];
        while (out.length < n && pos.offset < log.length) {
          const m = log[pos.offset++];
          out.push({ ...m, size: m.value?.length ?? 0 } as unknown as Kafka.Message);
        }
      }
      if (out.length > 0) cb(null, out);
      else setTimeout(() => cb(null, []), Math.min(this.timeoutMs, 20));
    });
  }

  committed(list: Kafka.TopicPartition[], _timeout: number, cb: Callback<Kafka.TopicPartitionOffset[]>): void {
    setImmediate(() => cb(null, list.map((p) => ({ topic: p.topic, partition: p.partition, offset: this.committedOffset(p.topic, p.partition) ?? -1001 }))));
  }
  seek(to: Kafka.TopicPartitionOffset, _timeout: number, cb: Callback): void {
    const pos = this.positions.get(key(to.topic, to.partition));
    if (pos) pos.offset = to.offset === -2 ? 0 : to.offset;
    setImmediate(() => cb(null));
  }
  position(list: Kafka.TopicPartition[]): Kafka.TopicPartitionOffset[] {
    return list.map((p) => ({ topic: p.topic, partition: p.partition, offset: this.positions.get(key(p.topic, p.partition))?.offset ?? -1001 }));
  }
  queryWatermarkOffsets(topic: string, partition: number, _timeout: number, cb: Callback<Kafka.WatermarkOffsets>): void {
    const log = this.broker.topics.get(topic)?.[partition] ?? [];
    setImmediate(() => cb(null, { lowOffset: 0, highOffset: log.length }));
  }
  commit(offsets: Kafka.TopicPartitionOffset[]): void {
    this.commitSync(offsets);
  }
  commitSync(offsets: Kafka.TopicPartitionOffset[]): void {
    const g = this.broker.committed.get(this.group) ?? new Map<string, number>();
    for (const o of offsets) g.set(key(o.topic, o.partition), o.offset);
    this.broker.committed.set(this.group, g);
  }
}

export class FakeProducer extends FakeClient {
  readonly transactionalId: string;
  fenced = false;
  open?: OpenTransaction;
  /** Messages of the open transaction whose delivery failed. */
  private undelivered = 0;

  constructor(
    private readonly broker: FakeBroker,
    config: Kafka.ProducerGlobalConfig,
  ) {
    super();
    this.transactionalId = String(config['transactional.id']);
  }

  setPollInterval(): this {
    return this;
  }
  poll(): this {
    return this;
  }
  private fencedError(): Kafka.LibrdKafkaError {
    return kafkaError(-144, 'Local: This instance has been fenced by a newer instance', { isFatal: true });
  }
  initTransactions(_timeout: number, cb: Callback): void {
    this.broker.initTransactions(this);
    setImmediate(() => cb(null));
  }
  beginTransaction(cb: Callback): void {
    if (this.fenced) {
      setImmediate(() => cb(this.fencedError()));
      return;
    }
    this.open = { messages: [], offsets: [] };
    setImmediate(() => cb(null));
  }
  produce(topic: string, partition: number | null, value: Buffer | null, k?: Buffer | string | null, _ts?: number, _opaque?: unknown, headers?: { [key: string]: Buffer | string }[]): void {
    if (this.fenced) throw this.fencedError();
    if (!this.open) throw kafkaError(-172, 'Local: Erroneous state: produce outside a transaction');
    if (this.broker.deniedTopics.has(topic)) {
      // as librdkafka: the delivery report (its code lost by node-rdkafka) comes later, the commit fails
      this.undelivered++;
      setTimeout(() => this.emit('delivery-report', kafkaError(-1, 'Broker: Topic authorization failed'), { topic }), 50);
      return;
    }
    this.open.messages.push({ topic, partition, key: k ?? null, value, headers });
  }
  sendOffsetsToTransaction(offsets: Kafka.TopicPartitionOffset[], consumer: Kafka.KafkaConsumer, _timeout: number, cb: Callback): void {
    setImmediate(() => {
      if (this.fenced) return cb(this.fencedError());
      const failure = this.broker.takeFailure('sendOffsets');
      if (failure) return cb(failure);
      this.open?.offsets.push({ group: (consumer as unknown as FakeConsumer).group, offsets });
      cb(null);
    });
  }
  commitTransaction(_timeout: number, cb: Callback): void {
    setImmediate(() => {
      if (this.fenced) return cb(this.fencedError());
      const failure = this.broker.takeFailure('commit');
      if (failure) return cb(failure);
      if (this.undelivered > 0) return cb(kafkaError(-1, `${this.undelivered} message(s) failed delivery`, { isTxnRequiresAbort: true }));
      if (this.open) this.broker.commit(this.open);
      this.open = undefined;
      cb(null);
    });
  }
  abortTransaction(_timeout: number, cb: Callback): void {
    setImmediate(() => {
      if (this.fenced) return cb(this.fencedError());
      if (this.open) this.broker.transactions.aborted++;
      this.open = undefined;
      this.undelivered = 0;
      cb(null);
    });
  }
}
