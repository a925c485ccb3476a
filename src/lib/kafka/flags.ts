// The Kafka client flags every command that talks to Kafka shares (capture, process as a worker,
// replay, serve), and what they make: the broker list and the user's client settings.
import { Flags } from '@oclif/core';
import { brokersIn, loadSettings, parseBrokers, SECRET_ENV, type KafkaSettings } from './settings';

const group = 'KAFKA CLIENT';

/** A flag with a fixed set of values, in any case as Kafka users write them (SASL_SSL, sasl_ssl). */
function oneOf(key: string, values: string[], normal: (v: string) => string) {
  return Flags.string({
    description: `${key}: ${values.join(', ')}`,
    helpGroup: group,
    parse: async (v) => {
      if (!values.includes(normal(v))) throw new Error(`${key} '${v}' is not one of ${values.join(', ')}`);
      return normal(v);
    },
  });
}

export const kafkaClientFlags = {
  'kafka-config': Flags.string({
    description: 'a .properties file of Kafka client settings (librdkafka keys, as in a client.properties), for every client the command makes; its bootstrap.servers is used when --brokers is not given',
    helpGroup: group,
  }),
  'kafka-setting': Flags.string({
    char: 'X',
    description: `one Kafka client setting, key=value (repeatable, as kcat's -X). Precedence, highest first: -X, the flags below, the environment (${Object.keys(SECRET_ENV).join(', ')}: put secrets there, not on the command line), --kafka-config`,
    multiple: true,
    helpGroup: group,
  }),
  'security-protocol': oneOf('security.protocol', ['plaintext', 'ssl', 'sasl_plaintext', 'sasl_ssl'], (v) => v.toLowerCase()),
  'sasl-mechanism': oneOf('sasl.mechanism', ['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512', 'OAUTHBEARER', 'GSSAPI'], (v) => v.toUpperCase()),
  'sasl-username': Flags.string({ description: 'sasl.username (the password: BGRM_KAFKA_SASL_PASSWORD or the --kafka-config file)', helpGroup: group }),
  'ssl-ca': Flags.string({ description: "ssl.ca.location: the CA certificate (PEM) that signed the brokers' certificates", helpGroup: group }),
  'ssl-cert': Flags.string({ description: 'ssl.certificate.location: this client\'s certificate (PEM), for mutual TLS', helpGroup: group }),
  'ssl-key': Flags.string({ description: 'ssl.key.location: this client\'s private key (PEM), for mutual TLS (its password: BGRM_KAFKA_SSL_KEY_PASSWORD)', helpGroup: group }),
};

export interface KafkaClientFlagValues {
  'kafka-config'?: string;
  'kafka-setting'?: string[];
  'security-protocol'?: string;
  'sasl-mechanism'?: string;
  'sasl-username'?: string;
  'ssl-ca'?: string;
  'ssl-cert'?: string;
  'ssl-key'?: string;
}

/**
 * The broker list (--brokers, else the settings' bootstrap.servers, else `fallback`) and the
 * settings without it (bgrm sets the broker list itself).
 */
export function kafkaClient(flags: KafkaClientFlagValues & { brokers?: string }, fallback: string): { brokers: string; settings: KafkaSettings };
export function kafkaClient(flags: KafkaClientFlagValues & { brokers?: string }): { brokers?: string; settings: KafkaSettings };
export function kafkaClient(flags: KafkaClientFlagValues & { brokers?: string }, fallback?: string): { brokers?: string; settings: KafkaSettings } {
  const shorthands: KafkaSettings = {};
  if (flags['security-protocol']) shorthands['security.protocol'] = flags['security-protocol'];
  if (flags['sasl-mechanism']) shorthands['sasl.mechanism'] = flags['sasl-mechanism'];
  if (flags['sasl-username']) shorthands['sasl.username'] = flags['sasl-username'];
  if (flags['ssl-ca']) shorthands['ssl.ca.location'] = flags['ssl-ca'];
  if (flags['ssl-cert']) shorthands['ssl.certificate.location'] = flags['ssl-cert'];
  if (flags['ssl-key']) shorthands['ssl.key.location'] = flags['ssl-key'];
  const settings = loadSettings({ file: flags['kafka-config'], env: process.env, shorthands, overrides: flags['kafka-setting'] });
  const named = brokersIn(settings);
  delete settings['bootstrap.servers'];
  delete settings['metadata.broker.list'];
  const list = flags.brokers ?? named ?? fallback;
  return { brokers: list ? parseBrokers(list) : undefined, settings };
}
