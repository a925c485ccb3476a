// The Kafka settings a user brings: .properties files as Java reads them, -X, secrets from the
// environment, the keys bgrm keeps for itself, and secrets kept out of what is printed.
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { isSecretKey, loadSettings, parseProperties, parseSetting, redacted, scrub } from '../../src/lib/kafka/settings';

describe('parseProperties', () => {
  it('reads comments, every separator, whitespace, continuations, escapes and unicode as java.util.Properties does', () => {
    const text = [
      '# a comment',
      '! another comment',
      '   ',
      'bootstrap.servers=broker-1:9093,broker-2:9093',
      'security.protocol = SASL_SSL',
      'sasl.mechanism:SCRAM-SHA-512',
      'sasl.username   bgrm',
      '  client.rack\t=\teu-west-1a',
      'sasl.password=p@ss=word:with#signs',
      'ssl.ca.location=/etc/ssl/ca\\',
      '    -bundle.pem',
      'key\\ with\\=odd\\:chars=value',
      'tab.escape=a\\tb',
      'unicode=caf\\u00e9 \u00fc\u6f22',
      'empty=',
      'no.value',
      'path=C:\\\\kafka\\\\certs',
    ].join('\r\n');
    expect(parseProperties(text)).toEqual({
      'bootstrap.servers': 'broker-1:9093,broker-2:9093',
      'security.protocol': 'SASL_SSL',
      'sasl.mechanism': 'SCRAM-SHA-512',
      'sasl.username': 'bgrm',
      'client.rack': 'eu-west-1a',
      'sasl.password': 'p@ss=word:with#signs',
      'ssl.ca.location': '/etc/ssl/ca-bundle.pem',
      'key with=odd:chars': 'value',
      'tab.escape': 'a\tb',
      unicode: 'café ü漢',
      empty: '',
      'no.value': '',
      path: 'C:\\kafka\\certs',
    });
  });
  it('a later key wins; a byte-order mark is ignored', () => {
    expect(parseProperties('\uFEFFa=1\na=2\n')).toEqual({ a: '2' });
  });
});

describe('loadSettings', () => {
  let tmp: string;
  beforeAll(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'bgrm-kafka-settings-'));
  });
  afterAll(async () => {
    await fs.rm(tmp, { recursive: true, force: true });
  });

  it('file < environment < shorthand flags < -X', async () => {
    const file = path.join(tmp, 'client.properties');
    await fs.writeFile(file, 'sasl.username=from-file\nsasl.password=file-secret\ncompression.type=lz4\nclient.rack=a\n');
    const s = loadSettings({
      file,
      env: { BGRM_KAFKA_SASL_PASSWORD: 'env-secret' },
      shorthands: { 'sasl.username': 'from-flag', 'client.rack': 'b' },
      overrides: ['client.rack=c', 'fetch.max.bytes=1048576'],
    });
    expect(s).toEqual({ 'sasl.username': 'from-flag', 'sasl.password': 'env-secret', 'compression.type': 'lz4', 'client.rack': 'c', 'fetch.max.bytes': '1048576' });
  });
  it("refuses bgrm's own keys, naming the key and where it came from", async () => {
    const file = path.join(tmp, 'bad.properties');
    await fs.writeFile(file, 'enable.auto.commit=true\n');
    expect(() => loadSettings({ file })).toThrow(/'enable.auto.commit' \(from --kafka-config .*bad.properties\) is bgrm's own/);
    expect(() => loadSettings({ overrides: ['isolation.level=read_uncommitted'] })).toThrow(/'isolation.level' \(from -X\)/);
    expect(() => loadSettings({ overrides: ['transactional.id=x'] })).toThrow(expect.objectContaining({ code: 'ERR_USAGE' }));
  });
  it('refuses SCRAM or PLAIN without a user or a password, naming where to put it', () => {
    const sasl = { 'security.protocol': 'SASL_SSL', 'sasl.mechanism': 'SCRAM-SHA-512' };
    expect(() => loadSettings({ shorthands: sasl })).toThrow(/SCRAM-SHA-512 needs a user: --sasl-username/);
    expect(() => loadSettings({ shorthands: { ...sasl, 'sasl.username': 'bgrm' } })).toThrow(/as user 'bgrm' needs a password: BGRM_KAFKA_SASL_PASSWORD/);
    expect(loadSettings({ shorthands: { ...sasl, 'sasl.username': 'bgrm' }, env: { BGRM_KAFKA_SASL_PASSWORD: 'p' } })['sasl.password']).toBe('p');
    // OAUTHBEARER and GSSAPI take no password here
    expect(() => loadSettings({ shorthands: { 'security.protocol': 'sasl_ssl', 'sasl.mechanism': 'OAUTHBEARER' } })).not.toThrow();
  });
  it('names a file it cannot read, and a malformed -X', () => {
    expect(() => loadSettings({ file: path.join(tmp, 'missing.properties') })).toThrow(/--kafka-config .*missing.properties: cannot read it \(ENOENT\)/);
    expect(() => parseSetting('security.protocol')).toThrow(/key=value/);
    expect(parseSetting('sasl.jaas.config=a=b')).toEqual(['sasl.jaas.config', 'a=b']);
  });
  it('secrets: recognised by key, redacted for display, scrubbed from messages', () => {
    for (const k of ['sasl.password', 'ssl.key.password', 'ssl.key.pem', 'sasl.oauthbearer.client.secret', 'sasl.jaas.config', 'ssl.key']) expect(isSecretKey(k)).toBe(true);
    for (const k of ['sasl.username', 'ssl.ca.location', 'security.protocol', 'ssl.key.location']) expect(isSecretKey(k)).toBe(false);
    const s = { 'sasl.username': 'bgrm', 'sasl.password': 'hunter2-long' };
    expect(redacted(s)).toEqual({ 'sasl.username': 'bgrm', 'sasl.password': '[redacted]' });
    expect(scrub('auth failed for bgrm with hunter2-long', s)).toBe('auth failed for bgrm with [redacted]');
  });
});
