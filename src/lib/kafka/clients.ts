// The Kafka clients bgrm makes, behind one door: the exactly-once worker (its group consumer, its
// transactional producer, the topics it creates) takes them from here, so that its transaction
// logic runs against a fake broker in unit tests and against node-rdkafka everywhere else.
import * as Kafka from 'node-rdkafka';
import { ensureTopic, type KafkaConnection } from './client';

export interface KafkaClients {
  consumer(config: Kafka.ConsumerGlobalConfig, topicConfig: Kafka.ConsumerTopicConfig): Kafka.KafkaConsumer;
  producer(config: Kafka.ProducerGlobalConfig, topicConfig?: Kafka.ProducerTopicConfig): Kafka.Producer;
  /** Creates the topic if it is missing; resolves 'exists' or 'created'. */
  ensureTopic(conn: KafkaConnection, topic: string, partitions: number, topicOps?: string): Promise<'exists' | 'created'>;
}

/** librdkafka's clients, through node-rdkafka. */
export const rdkafkaClients: KafkaClients = {
  consumer: (config, topicConfig) => new Kafka.KafkaConsumer(config, topicConfig),
  producer: (config, topicConfig) => new Kafka.Producer(config, topicConfig),
  ensureTopic,
};
