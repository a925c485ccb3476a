// Frame messages: both formats round-trip; damaged or hostile messages are refused with a reason.
import {
  deadLetterHeaders,
  decodeFrameMessage,
  encodeFrameMessage,
  isCameraId,
  messageFrame,
  originOf,
  parseOrigin,
  type FrameMeta,
  type IncomingMessage,
} from '../../src/lib/kafka/messages';

const meta: FrameMeta = { cameraId: 'cam-1', frameNumber: 42, timestampMs: 1700000000123, width: 854, height: 480, encoding: 'jpeg', quality: 85 };
const jpeg = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 4]);

function incoming(m: ReturnType<typeof encodeFrameMessage>): IncomingMessage {
  const headers = m.headers.map((h) => Object.fromEntries(Object.entries(h).map(([k, v]) => [k, Buffer.from(String(v))])));
  return { topic: 't', partition: 0, offset: 7, key: Buffer.from(m.key), value: m.value, headers };
}

describe('frame messages', () => {
  it.each(['binary', 'seed-json'] as const)('%s round-trips bytes and metadata', (format) => {
    const m = encodeFrameMessage(meta, jpeg, format);
    expect(m.key).toBe('cam-1');
    if (format === 'binary') expect(m.value).toBe(jpeg);
    const f = decodeFrameMessage(incoming(m));
    expect(f.bytes.equals(jpeg)).toBe(true);
    expect(f.meta).toEqual(meta);
    expect(f.origin).toBe('t[0]@7');
  });

  it('reads the old tool JSON message as it wrote it', () => {
    const value = Buffer.from(JSON.stringify({ camera_id: 'front', timestamp_ms: 5, frame_number: 3, width: 2, height: 1, encoding: 'jpeg', frame_data: jpeg.toString('base64'), quality: 80 }));
    const f = decodeFrameMessage({ topic: 't', partition: 1, offset: 0, value });
    expect([f.cameraId, f.frameNumber, f.timestampMs]).toEqual(['front', 3, 5]);
  });

  it.each([
    ['empty value', Buffer.alloc(0)],
    ['broken JSON', Buffer.from('{"camera_id": ')],
    ['JSON without frame_data', Buffer.from('{"camera_id":"a","frame_number":1,"timestamp_ms":1}')],
    ['a path as camera id', Buffer.from(JSON.stringify({ camera_id: '../../etc', frame_number: 1, timestamp_ms: 1, frame_data: '' }))],
    ['a negative frame number', Buffer.from(JSON.stringify({ camera_id: 'a', frame_number: -1, timestamp_ms: 1, frame_data: '' }))],
    ['raw bytes without headers', Buffer.from('hello')],
    ['frame_data that is not base64', Buffer.from(JSON.stringify({ camera_id: 'a', frame_number: 1, timestamp_ms: 1, frame_data: '!!not*base64' }))],
  ])('refuses %s with ERR_BAD_MESSAGE', (_why, value) => {
    expect(() => decodeFrameMessage({ topic: 't', partition: 0, offset: 1, value })).toThrow(expect.objectContaining({ code: 'ERR_BAD_MESSAGE' }));
  });
});

describe('message helpers every Kafka reader and writer shares', () => {
  it('origin strings round-trip, also for topic names with brackets', () => {
    for (const m of [{ topic: 'frames', partition: 3, offset: 12345 }, { topic: 'a[1]@2', partition: 0, offset: 0 }]) expect(parseOrigin(originOf(m))).toEqual(m);
    expect(parseOrigin('not an origin')).toBeUndefined();
    expect(parseOrigin(undefined)).toBeUndefined();
  });
  it('a message becomes a named frame, or an error frame with the message time', () => {
    const good = messageFrame(incoming(encodeFrameMessage(meta, jpeg, 'binary')));
    expect([good.name, good.error]).toEqual(['cam-1/00000042', undefined]);
    const bad = messageFrame({ topic: 't', partition: 1, offset: 9, value: Buffer.from('junk'), timestamp: 1234 });
    expect(bad).toMatchObject({ cameraId: 'unknown', frameNumber: 9, timestampMs: 1234, origin: 't[1]@9', error: { code: 'ERR_BAD_MESSAGE' } });
  });
  it('dead-letter headers keep the input headers and add why, where from and which worker', () => {
    const m: IncomingMessage = { topic: 't', partition: 2, offset: 5, value: null, headers: [{ 'camera-id': 'c' }] };
    expect(deadLetterHeaders(m, 'ERR_X', 'x'.repeat(2000), 'w1')).toEqual([
      { 'camera-id': 'c' },
      { 'bgrm-error-code': 'ERR_X' },
      { 'bgrm-error': 'x'.repeat(1000) },
      { 'bgrm-source': 't[2]@5' },
      { 'bgrm-worker': 'w1' },
    ]);
  });
  it('camera ids that could leave the output folder are refused', () => {
    expect(['cam-1', 'a.b_c', 'x'.repeat(128)].every(isCameraId)).toBe(true);
    expect(['.', '..', '../x', 'a/b', '', 'x'.repeat(129), 'sp ace'].some(isCameraId)).toBe(false);
  });
});
