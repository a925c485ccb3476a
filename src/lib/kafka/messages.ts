// Frame messages on Kafka: bgrm's binary format (JPEG value, metadata in headers) and the old
// tool's JSON format (base64 frame_data). Every reader accepts both.
import { BgrmError, errorCode, errorMessage } from '../errors';
import type { Frame } from '../frame';

export const FORMAT_VERSION = '1';
/** Where workers publish their status records and serve's dashboard reads them. */
export const DEFAULT_STATUS_TOPIC = 'bgrm.status';
export type MessageFormat = 'binary' | 'seed-json';

export interface FrameMeta {
  cameraId: string;
  frameNumber: number;
  timestampMs: number;
  width: number;
  height: number;
  encoding: 'jpeg' | 'png';
  quality: number;
}

/** node-rdkafka's header shape: one single-key object per header. */
export type KafkaHeaders = { [key: string]: Buffer | string }[];

export interface OutgoingMessage {
  key: string;
  value: Buffer;
  headers: KafkaHeaders;
  timestampMs: number;
}

export function encodeFrameMessage(meta: FrameMeta, image: Buffer, format: MessageFormat): OutgoingMessage {
  if (format === 'seed-json') {
    const value = Buffer.from(
      JSON.stringify({
        camera_id: meta.cameraId,
        timestamp_ms: meta.timestampMs,
        frame_number: meta.frameNumber,
        width: meta.width,
        height: meta.height,
        encoding: meta.encoding,
        frame_data: image.toString('base64'),
        quality: meta.quality,
      }),
    );
    return { key: meta.cameraId, value, headers: [], timestampMs: meta.timestampMs };
  }
  const headers: KafkaHeaders = [
    { 'bgrm-format': FORMAT_VERSION },
    { 'camera-id': meta.cameraId },
    { 'frame-number': String(meta.frameNumber) },
    { 'capture-ts-ms': String(meta.timestampMs) },
    { width: String(meta.width) },
    { height: String(meta.height) },
    { encoding: meta.encoding },
    { quality: String(meta.quality) },
  ];
  return { key: meta.cameraId, value: image, headers, timestampMs: meta.timestampMs };
}

export function headerMap(headers: KafkaHeaders | undefined): Map<string, string> {
  const m = new Map<string, string>();
  for (const h of headers ?? []) for (const [k, v] of Object.entries(h)) m.set(k, Buffer.isBuffer(v) ? v.toString('utf8') : String(v));
  return m;
}

export interface IncomingMessage {
  topic: string;
  partition: number;
  offset: number;
  key?: Buffer | string | null;
  value: Buffer | null;
  headers?: KafkaHeaders;
  timestamp?: number;
}

/** A consumed node-rdkafka message as bgrm's readers see it. */
export function incoming(m: { topic: string; partition: number; offset: number; key?: Buffer | string | null; value: Buffer | null; headers?: unknown; timestamp?: number }): IncomingMessage {
  return { topic: m.topic, partition: m.partition, offset: m.offset, key: m.key, value: m.value, headers: m.headers as KafkaHeaders | undefined, timestamp: m.timestamp };
}

/** Where a message came from, as reports and the bgrm-source header write it: topic[partition]@offset. */
export function originOf(m: { topic: string; partition: number; offset: number }): string {
  return `${m.topic}[${m.partition}]@${m.offset}`;
}

/** The inverse of originOf, or undefined for anything else. */
export function parseOrigin(s: string | undefined): { topic: string; partition: number; offset: number } | undefined {
  const m = /^(.+)\[(\d+)\]@(\d+)$/.exec(s ?? '');
  return m ? { topic: m[1], partition: Number(m[2]), offset: Number(m[3]) } : undefined;
}

/** Camera ids name output folders: letters, digits, '.', '_', '-', at most 128, never '.' or '..'. */
export function isCameraId(id: string): boolean {
  return /^[A-Za-z0-9._-]{1,128}$/.test(id) && id !== '.' && id !== '..';
}

/** The headers a dead letter carries beside the input's own: why, where it came from, which worker. */
export function deadLetterHeaders(m: IncomingMessage, code: string, reason: string, workerId: string): KafkaHeaders {
  return [...(m.headers ?? []), { 'bgrm-error-code': code }, { 'bgrm-error': reason.slice(0, 1000) }, { 'bgrm-source': originOf(m) }, { 'bgrm-worker': workerId }];
}

/**
 * A consumed message as a frame for the pipeline, named camera/frame; a message that is not a
 * frame becomes an error frame (reported, dead-lettered), stamped with the message's own time.
 */
export function messageFrame(message: IncomingMessage): Frame {
  try {
    const f = decodeFrameMessage(message);
    return { ...f, name: `${f.cameraId}/${String(f.frameNumber).padStart(8, '0')}` };
  } catch (err) {
    return {
      bytes: Buffer.alloc(0),
      cameraId: 'unknown',
      frameNumber: message.offset,
      timestampMs: message.timestamp ?? Date.now(),
      origin: originOf(message),
      name: '',
      error: { code: errorCode(err), message: errorMessage(err) },
    };
  }
}

function badMessage(msg: IncomingMessage, why: string): BgrmError {
  return new BgrmError('ERR_BAD_MESSAGE', `${originOf(msg)}: ${why}`);
}

function checkCameraId(msg: IncomingMessage, id: string): string {
  if (!isCameraId(id)) {
    throw badMessage(msg, `camera id '${id.slice(0, 64)}' is not allowed (letters, digits, '.', '_', '-'; at most 128)`);
  }
  return id;
}

function intField(msg: IncomingMessage, name: string, v: unknown): number {
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw badMessage(msg, `'${name}' is not a non-negative integer`);
  return n;
}

/** Turns a consumed message into a Frame, or throws ERR_BAD_MESSAGE saying what is wrong with it. */
export function decodeFrameMessage(msg: IncomingMessage): Frame & { meta: FrameMeta } {
  if (!msg.value || msg.value.length === 0) throw badMessage(msg, 'empty value');
  const h = headerMap(msg.headers);
  const origin = originOf(msg);
  if (h.has('bgrm-format')) {
    if (h.get('bgrm-format') !== FORMAT_VERSION) throw badMessage(msg, `unsupported bgrm-format ${h.get('bgrm-format')}`);
    const meta: FrameMeta = {
      cameraId: checkCameraId(msg, h.get('camera-id') ?? String(msg.key ?? '')),
      frameNumber: intField(msg, 'frame-number', h.get('frame-number')),
      timestampMs: intField(msg, 'capture-ts-ms', h.get('capture-ts-ms') ?? String(msg.timestamp ?? 0)),
      width: intField(msg, 'width', h.get('width') ?? '0'),
      height: intField(msg, 'height', h.get('height') ?? '0'),
      encoding: h.get('encoding') === 'png' ? 'png' : 'jpeg',
      quality: Number(h.get('quality') ?? 0),
    };
    return { bytes: msg.value, cameraId: meta.cameraId, frameNumber: meta.frameNumber, timestampMs: meta.timestampMs, origin, name: '', meta };
  }
  if (msg.value[0] === 0x7b /* { */) {
    let j: Record<string, unknown>;
    try {
      j = JSON.parse(msg.value.toString('utf8')) as Record<string, unknown>;
    } catch {
      throw badMessage(msg, 'value starts with { but is not valid JSON');
    }
    if (typeof j.frame_data !== 'string') throw badMessage(msg, "JSON frame message without 'frame_data'");
    if (!/^[A-Za-z0-9+/\r\n]*={0,2}$/.test(j.frame_data)) throw badMessage(msg, "'frame_data' is not base64");
    const meta: FrameMeta = {
      cameraId: checkCameraId(msg, String(j.camera_id ?? '')),
      frameNumber: intField(msg, 'frame_number', j.frame_number),
      timestampMs: intField(msg, 'timestamp_ms', j.timestamp_ms),
      width: intField(msg, 'width', j.width ?? 0),
      height: intField(msg, 'height', j.height ?? 0),
      encoding: j.encoding === 'png' ? 'png' : 'jpeg',
      quality: Number(j.quality ?? 0),
    };
    const bytes = Buffer.from(j.frame_data, 'base64');
    return { bytes, cameraId: meta.cameraId, frameNumber: meta.frameNumber, timestampMs: meta.timestampMs, origin, name: '', meta };
  }
  throw badMessage(msg, 'neither a bgrm frame (bgrm-format header) nor a JSON frame message');
}
