// KafkaFrameSource: the at-least-once group source. Frames come from the group's partitions
// (kafka/group-reader.ts); the consumer's offsets are committed here, only for frames whose output
// (a file, or a dead letter) is durable, in order per partition: at the latest every
// `commitIntervalMs`, before partitions move to another worker, and at close. A frame processed
// again after a crash rewrites its own file with the same bytes. (The exactly-once output topic
// commits offsets in its transactions instead: kafka/exactly-once.ts.)
import type * as Kafka from 'node-rdkafka';
import { GroupReader, tp, type GroupReaderOptions } from '../kafka/group-reader';

export type { KafkaFrame } from '../kafka/group-reader';

export interface KafkaSourceOptions extends GroupReaderOptions {
  commitIntervalMs?: number;
}

export class KafkaFrameSource extends GroupReader {
  private lastCommit = 0;

  constructor(protected readonly opts: KafkaSourceOptions) {
    super(opts);
  }

  /** Before partitions go to another worker, what is done here is committed, then they are given up. */
  protected override revoked(partitions: Kafka.Assignment[], consumer: Kafka.KafkaConsumer): void {
    this.commit(true, partitions);
    this.unassign(partitions, consumer);
  }

  protected override fetched(): void {
    this.commit(false);
  }

  private commit(sync: boolean, revoked: Kafka.Assignment[] = []): void {
    if (!this.consumer || this.done.size === 0) return;
    if (!sync && Date.now() - this.lastCommit < (this.opts.commitIntervalMs ?? 1000)) return;
    // done offsets of partitions just revoked are still this member's to commit, once
    const mine = (o: Kafka.TopicPartitionOffset) => this.owned.has(tp(o)) || revoked.some((r) => r.topic === o.topic && r.partition === o.partition);
    const offsets = this.takeDone().filter(mine);
    if (offsets.length === 0) return;
    this.lastCommit = Date.now();
    try {
      if (sync) this.consumer.commitSync(offsets);
      else this.consumer.commit(offsets);
    } catch {
      // a partition revoked meanwhile: its next owner reprocesses from the last commit (outputs are idempotent)
    }
  }

  override async close(): Promise<void> {
    this.commit(true);
    await super.close();
  }
}
