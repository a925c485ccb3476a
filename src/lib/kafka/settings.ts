// The user's Kafka client settings: a Java-style .properties file (--kafka-config), secrets from the
// environment, shorthand flags and -X key=value, merged in that order (later wins) and passed to
// every client bgrm makes. Keys that bgrm's guarantees depend on are refused, and values of secret
// keys never appear in anything bgrm prints.
import { readFileSync } from 'node:fs';
import { BgrmError } from '../errors';

export type KafkaSettings = Record<string, string>;

/**
 * Parses .properties text as java.util.Properties does: `#` and `!` comments, `key=value`,
 * `key:value` or `key value`, whitespace around the separator, a backslash at the end of a line
 * continuing it, and the escapes \t \n \r \f \uXXXX (any other escaped character stands for itself,
 * so `\=`, `\:` and `\ ` can be part of a key).
 */
export function parseProperties(text: string): KafkaSettings {
  const out: KafkaSettings = {};
  const lines = text.replace(/^\uFEFF/, '').split(/\r\n|\r|\n/);
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i].replace(/^[ \t\f]+/, '');
    if (line === '' || line[0] === '#' || line[0] === '!') continue;
    // a logical line: an odd number of trailing backslashes continues it on the next line
    while (/(^|[^\\])(\\\\)*\\$/.test(line) && i + 1 < lines.length) {
      line = line.slice(0, -1) + lines[++i].replace(/^[ \t\f]+/, '');
    }
    if (/(^|[^\\])(\\\\)*\\$/.test(line)) line = line.slice(0, -1);
    // the key ends at the first unescaped '=', ':' or whitespace
    let k = 0;
    while (k < line.length && !'=: \t\f'.includes(line[k])) k += line[k] === '\\' ? 2 : 1;
    const rawKey = line.slice(0, Math.min(k, line.length));
    let v = k;
    while (v < line.length && ' \t\f'.includes(line[v])) v++;
    if (v < line.length && (line[v] === '=' || line[v] === ':')) v++;
    while (v < line.length && ' \t\f'.includes(line[v])) v++;
    out[unescape(rawKey)] = unescape(line.slice(v));
  }
  return out;
}

function unescape(s: string): string {
  return s.replace(/\\(u([0-9a-fA-F]{4})|.)/g, (_m, c: string, hex?: string) => {
    if (hex) return String.fromCharCode(parseInt(hex, 16));
    return c === 't' ? '\t' : c === 'n' ? '\n' : c === 'r' ? '\r' : c === 'f' ? '\f' : c;
  });
}

/** `-X key=value` as given (kcat's convention). */
export function parseSetting(arg: string): [string, string] {
  const eq = arg.indexOf('=');
  if (eq <= 0) throw new BgrmError('ERR_USAGE', `-X ${arg}: give a Kafka setting as key=value (for example -X security.protocol=SASL_SSL)`);
  return [arg.slice(0, eq).trim(), arg.slice(eq + 1)];
}

/**
 * Settings bgrm sets itself because its guarantees depend on them (exactly-once output, offsets
 * committed only after a frame is durable, no lost frames): refused wherever they come from.
 */
const PROTECTED: Record<string, string> = {
  'enable.idempotence': 'producers are idempotent so that retries never duplicate a frame',
  'transactional.id': 'the exactly-once output names its own transactions (one per worker and partition set)',
  'isolation.level': 'readers of the exactly-once output read committed transactions only',
  'enable.auto.commit': 'offsets are committed only after a frame is written (at-least-once) or in its transaction',
  'enable.auto.offset.store': 'offsets are stored only after a frame is written',
  'group.id': 'the consumer group is --group',
  'acks': 'produced frames wait for every in-sync replica (acks=all)',
  'request.required.acks': 'produced frames wait for every in-sync replica (acks=all)',
  'enable.partition.eof': 'the worker uses partition ends to know when it has caught up',
  'dr_cb': 'delivery reports tell bgrm a frame is durable',
  'dr_msg_cb': 'delivery reports tell bgrm a frame is durable',
};

/** Environment variables for secrets, so that they are not on the command line (nor in `ps`). */
export const SECRET_ENV: Record<string, string> = {
  BGRM_KAFKA_SASL_USERNAME: 'sasl.username',
  BGRM_KAFKA_SASL_PASSWORD: 'sasl.password',
  BGRM_KAFKA_SSL_KEY_PASSWORD: 'ssl.key.password',
  BGRM_KAFKA_SSL_KEYSTORE_PASSWORD: 'ssl.keystore.password',
  BGRM_KAFKA_OAUTHBEARER_CONFIG: 'sasl.oauthbearer.config',
};

/** Does this key hold a secret (its value is never printed)? */
export function isSecretKey(key: string): boolean {
  return /password|secret|(^|\.)key$|\.pem$|token|jaas|oauthbearer\.config|private/.test(key.toLowerCase());
}

/** The settings with every secret value replaced, for anything that is shown. */
export function redacted(settings: KafkaSettings): KafkaSettings {
  return Object.fromEntries(Object.entries(settings).map(([k, v]) => [k, isSecretKey(k) ? '[redacted]' : v]));
}

/** Replaces every secret value of `settings` that occurs in `text` (an error message from the client library, say). */
export function scrub(text: string, settings: KafkaSettings | undefined): string {
  let out = text;
  for (const [k, v] of Object.entries(settings ?? {})) if (isSecretKey(k) && v.length >= 4) out = out.split(v).join('[redacted]');
  return out;
}

export interface SettingsSources {
  /** --kafka-config FILE */
  file?: string;
  /** the environment (SECRET_ENV) */
  env?: NodeJS.ProcessEnv;
  /** shorthand flags, already as librdkafka keys */
  shorthands?: KafkaSettings;
  /** -X key=value, in order */
  overrides?: string[];
}

/**
 * The user's settings, lowest precedence first: the properties file, then the environment's
 * secrets, then the shorthand flags, then -X. A protected key is refused, naming where it came from.
 */
export function loadSettings(src: SettingsSources): KafkaSettings {
  const layers: [string, KafkaSettings][] = [];
  if (src.file) {
    let text: string;
    try {
      text = readFileSync(src.file, 'utf8');
    } catch (err) {
      throw new BgrmError('ERR_USAGE', `--kafka-config ${src.file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    layers.push([`--kafka-config ${src.file}`, parseProperties(text)]);
  }
  const env = src.env ?? {};
  const fromEnv: KafkaSettings = {};
  for (const [name, key] of Object.entries(SECRET_ENV)) if (env[name]) fromEnv[key] = env[name]!;
  layers.push(['the environment', fromEnv]);
  layers.push(['the flags', src.shorthands ?? {}]);
  layers.push(['-X', Object.fromEntries((src.overrides ?? []).map(parseSetting))]);
  const out: KafkaSettings = {};
  for (const [where, layer] of layers) {
    for (const [key, value] of Object.entries(layer)) {
      if (key in PROTECTED) {
        throw new BgrmError('ERR_USAGE', `Kafka setting '${key}' (from ${where}) is bgrm's own: ${PROTECTED[key]}. Remove it.`);
      }
      out[key] = value;
    }
  }
  checkComplete(out);
  return out;
}

/** Settings that cannot work, refused before a client is made (librdkafka would say only "Erroneous state"). */
function checkComplete(s: KafkaSettings): void {
  const mechanism = (s['sasl.mechanism'] ?? s['sasl.mechanisms'] ?? 'GSSAPI').toUpperCase();
  const sasl = (s['security.protocol'] ?? 'plaintext').toLowerCase().startsWith('sasl_');
  if (sasl && /^(PLAIN|SCRAM-SHA-256|SCRAM-SHA-512)$/.test(mechanism)) {
    if (!s['sasl.username']) throw new BgrmError('ERR_USAGE', `${mechanism} needs a user: --sasl-username, or sasl.username in the --kafka-config file`);
    if (!s['sasl.password']) {
      throw new BgrmError('ERR_USAGE', `${mechanism} as user '${s['sasl.username']}' needs a password: BGRM_KAFKA_SASL_PASSWORD, or sasl.password in the --kafka-config file`);
    }
  }
}

/** The broker list the settings name (bootstrap.servers or metadata.broker.list), if any. */
export function brokersIn(settings: KafkaSettings): string | undefined {
  return settings['bootstrap.servers'] ?? settings['metadata.broker.list'];
}

/** A --brokers value as librdkafka's list (host:port, comma-separated), or ERR_USAGE saying what is wrong. */
export function parseBrokers(value: string): string {
  const list = value.split(',').map((s) => s.trim()).filter(Boolean);
  if (list.length === 0 || list.some((b) => !/^[A-Za-z0-9.\-_[\]:]+:\d{1,5}$/.test(b))) {
    throw new BgrmError('ERR_USAGE', `--brokers '${value}' is not a host:port list (for example 127.0.0.1:9092)`);
  }
  return list.join(',');
}
