// `bgrm serve`: the model over HTTP (POST /v1/remove), health, Prometheus metrics, the OpenAPI
// document, and the live dashboard of the Kafka pipeline. Binds 127.0.0.1 unless told otherwise;
// bodies, image sizes and the queue are bounded; with a token every route but /healthz needs it.
import { timingSafeEqual } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import { BgrmError, errorCode, errorMessage } from '../errors';
import { parseColor } from '../background';
import { Metrics } from '../metrics';
import { knownModels, modelsDir } from '../models';
import { native, projectRoot, type ProcessOptions } from '../native';
import type { KafkaSettings } from '../kafka/settings';
import { OUTPUT_FORMATS, type OutputFormat } from '../output-format';
import { openSegmenter, type OpenSegmenter, type SegmenterConfig } from '../segmenter';
import { imageFromMultipart } from './multipart';
import { openApiDocument } from './openapi';
import { PipelineState } from './state';

export interface ServeOptions extends SegmenterConfig {
  host: string;
  port: number;
  token?: string;
  /** Largest request body in bytes; larger ones are refused before they are read whole. */
  maxBody: number;
  /** Requests inside the native core at once. */
  concurrency: number;
  /** Requests waiting for a slot; beyond this, 503 with Retry-After. */
  queue: number;
  maxPixels: number;
  maxSide: number;
  pngLevel: number;
  /** The Kafka pipeline to watch (optional): brokers, frame topic, output topic, status topic. */
  brokers?: string;
  topic?: string;
  outputTopic?: string;
  statusTopic?: string;
  connectTimeoutMs?: number;
  /** The user's Kafka client settings (--kafka-config, -X, ...). */
  kafkaSettings?: KafkaSettings;
  version: string;
}

export interface RunningServer {
  url: string;
  metrics: Metrics;
  close(): Promise<void>;
}

class HttpError extends BgrmError {
  constructor(
    readonly status: number,
    code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(code, message);
  }
}

/** HTTP status for an error code of the native core or of bgrm. */
function statusOf(err: unknown): number {
  if (err instanceof HttpError) return err.status;
  switch (errorCode(err)) {
    case 'ERR_DECODE':
    case 'ERR_BAD_REQUEST':
    case 'ERR_USAGE':
    case 'ERR_UNKNOWN_MODEL':
      return 400;
    case 'ERR_IMAGE_TOO_LARGE':
      return 413;
    case 'ERR_UNSUPPORTED_FORMAT':
      return 415;
    case 'ERR_MODEL_NOT_INSTALLED':
      return 404;
    default:
      return 500;
  }
}

const MEDIA_TYPE: Record<OutputFormat, string> = { png: 'image/png', webp: 'image/webp', jpeg: 'image/jpeg' };

/**
 * The image format of a response: the `output-format` parameter, else the best of PNG, WebP and
 * JPEG that the Accept header takes (by its q-values; PNG when it takes anything). JPEG only where
 * nothing is transparent (a mask, or a background).
 */
export function responseFormat(param: string | null, accept: string | undefined, opaque: boolean): OutputFormat {
  const refuseJpeg = () => {
    throw new HttpError(406, 'ERR_NOT_ACCEPTABLE', 'JPEG has no alpha channel: ask for a background (background=white) or format=mask, or accept image/png or image/webp');
  };
  if (param !== null) {
    if (!(OUTPUT_FORMATS as readonly string[]).includes(param)) throw new HttpError(400, 'ERR_BAD_REQUEST', `output-format=${param}: use ${OUTPUT_FORMATS.join(', ')}`);
    if (param === 'jpeg' && !opaque) refuseJpeg();
    return param as OutputFormat;
  }
  if (!accept) return 'png';
  const ranked = accept
    .split(',')
    .map((part, i) => {
      const [type, ...params] = part.trim().toLowerCase().split(';');
      const qp = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
      return { type: type.trim(), q: qp ? Number(qp.slice(2)) || 0 : 1, i };
    })
    .filter((t) => t.q > 0)
    .sort((a, b) => b.q - a.q || a.i - b.i);
  for (const { type } of ranked) {
    if (type === 'image/png' || type === 'image/*' || type === '*/*') return 'png';
    if (type === 'image/webp') return 'webp';
    if (type === 'image/jpeg') {
      if (opaque) return 'jpeg';
      if (ranked.length === 1) refuseJpeg();
    }
  }
  throw new HttpError(406, 'ERR_NOT_ACCEPTABLE', `Accept: ${accept} takes none of image/png, image/webp, image/jpeg`);
}

/** Admission: `slots` requests in the core at once, `queue` more waiting, the rest refused. */
class Admission {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(
    private readonly slots: number,
    private readonly queue: number,
  ) {}
  get inFlight(): number {
    return this.active;
  }
  get queued(): number {
    return this.waiting.length;
  }
  /** Resolves to a release function, or undefined when both the slots and the queue are full. */
  async enter(): Promise<(() => void) | undefined> {
    if (this.active >= this.slots) {
      if (this.waiting.length >= this.queue) return undefined;
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else this.active++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next) next(); // the slot passes on
      else this.active--;
    };
  }
}

function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (chunk: Buffer) => {
      if (over) return;
      size += chunk.length;
      if (size > limit) {
        over = true;
        chunks.length = 0;
        req.pause();
        reject(new HttpError(413, 'ERR_BODY_TOO_LARGE', `request body is over --max-body ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => !over && resolve(Buffer.concat(chunks)));
    req.on('error', (err) => !over && reject(err));
  });
}

function sameSecret(given: string | undefined, token: string): boolean {
  if (!given) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

function tokenOf(req: http.IncomingMessage, url: URL): string | undefined {
  const auth = req.headers.authorization;
  if (auth?.startsWith('Bearer ')) return auth.slice(7).trim();
  const q = url.searchParams.get('token');
  if (q) return q;
  const cookie = /(?:^|;\s*)bgrm_token=([^;]+)/.exec(req.headers.cookie ?? '');
  return cookie ? decodeURIComponent(cookie[1]) : undefined;
}

const STATIC_TYPES: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.svg': 'image/svg+xml' };
const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

/** Is host:port accepting connections (within 2 s)? */
function tcpReachable(hostPort: string): Promise<boolean> {
  const i = hostPort.lastIndexOf(':');
  return new Promise((resolve) => {
    const socket = net.connect({ host: hostPort.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(hostPort.slice(i + 1)) });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(2000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

export async function startServer(opts: ServeOptions): Promise<RunningServer> {
  const metrics = new Metrics();
  const versions = native().versions();
  const segmenters = new Map<string, Promise<OpenSegmenter>>();
  const loadModel = (name: string): Promise<OpenSegmenter> => {
    let s = segmenters.get(name);
    if (!s) {
      if (segmenters.size >= 4) throw new HttpError(400, 'ERR_TOO_MANY_MODELS', 'this server already holds 4 models; use one of those');
      s = openSegmenter({ ...opts, model: name });
      segmenters.set(name, s);
      s.then(
        (o) => metrics.modelInfo.set({ model: o.model.name, onnxruntime: versions.onnxruntime, device: o.info.device }, 1),
        () => segmenters.delete(name),
      );
    }
    return s;
  };
  const defaultModel = loadModel(opts.model); // listening starts meanwhile: /readyz says when it is loaded
  let modelLoaded = false;
  defaultModel.then(() => (modelLoaded = true), () => undefined);
  const admission = new Admission(opts.concurrency, opts.queue);
  const state = new PipelineState(opts, metrics);
  state.load = () => ({ inFlight: admission.inFlight, queued: admission.queued });
  const webRoot = path.join(projectRoot, 'web');
  let brokerCheck: { at: number; ok: boolean } | undefined;

  const send = (res: http.ServerResponse, status: number, body: string | Buffer, type: string, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), 'X-Content-Type-Options': 'nosniff', ...headers });
    res.end(body);
  };
  const sendJson = (res: http.ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}) =>
    send(res, status, JSON.stringify(value), 'application/json; charset=utf-8', headers);
  const sendError = (res: http.ServerResponse, err: unknown) => {
    const status = statusOf(err);
    const headers = err instanceof HttpError ? err.headers : {};
    sendJson(res, status, { error: { code: errorCode(err), message: errorMessage(err) } }, headers);
  };

  async function remove(req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<void> {
    const arrived = performance.now();
    if (req.method !== 'POST') throw new HttpError(405, 'ERR_METHOD', 'use POST with the image as the body', { Allow: 'POST' });
    const type = (req.headers['content-type'] ?? 'application/octet-stream').toLowerCase();
    const multipart = type.startsWith('multipart/form-data');
    if (!multipart && !/^(image\/(jpeg|jpg|pjpeg|png|webp|tiff|bmp|x-ms-bmp|gif|heic|heif|avif)|application\/octet-stream)\b/.test(type)) {
      throw new HttpError(415, 'ERR_UNSUPPORTED_MEDIA_TYPE', `Content-Type ${type} is not supported; send an image (image/jpeg, image/png, image/webp, ...), application/octet-stream or multipart/form-data`);
    }
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (declared > opts.maxBody) {
      throw new HttpError(413, 'ERR_BODY_TOO_LARGE', `request body of ${declared} bytes is over --max-body ${opts.maxBody}`, { Connection: 'close' });
    }
    const format = url.searchParams.get('format') ?? 'rgba';
    if (format !== 'rgba' && format !== 'mask') throw new HttpError(400, 'ERR_BAD_REQUEST', `format=${format}: use rgba or mask`);
    const bg = url.searchParams.get('background');
    const encoding = responseFormat(url.searchParams.get('output-format'), req.headers.accept, format === 'mask' || !!bg);
    const quality = url.searchParams.get('quality');
    const q = quality === null ? 0 : Number(quality);
    if (!Number.isInteger(q) || q < 0 || q > 100) throw new HttpError(400, 'ERR_BAD_REQUEST', `quality=${quality}: a whole number 1-100 (WebP: lossy at that quality; JPEG: its quality)`);
    const options: ProcessOptions = { output: format, encoding, quality: q, pngLevel: opts.pngLevel, maxPixels: opts.maxPixels, maxSide: opts.maxSide };
    if (bg) {
      const color = parseColor(bg);
      if (!color) throw new HttpError(400, 'ERR_BAD_REQUEST', `background=${bg} is not a colour (#rrggbb, #rgb, white, black, ...)`);
      options.color = color;
    }
    const modelName = url.searchParams.get('model') ?? opts.model;
    if (modelName !== opts.model && !MODEL_NAME.test(modelName)) throw new HttpError(400, 'ERR_BAD_REQUEST', `model=${modelName}: give a model name (GET /v1/models)`);

    const release = await admission.enter();
    if (!release) {
      metrics.fail('http', 'ERR_BUSY');
      throw new HttpError(503, 'ERR_BUSY', `all ${opts.concurrency} slots and ${opts.queue} queue places are taken; retry shortly`, { 'Retry-After': '1' });
    }
    metrics.inFlight.inc({ source: 'http' });
    try {
      const body = await readBody(req, opts.maxBody);
      const image = multipart ? imageFromMultipart(body, type) : body;
      const { segmenter } = modelName === opts.model ? await defaultModel : await loadModel(modelName);
      const result = await segmenter.process(image, options).catch((err: unknown) => {
        metrics.fail('http', errorCode(err));
        throw err;
      });
      const t = result.timings;
      metrics.observe('http', t, performance.now() - arrived);
      send(res, 200, result.data, MEDIA_TYPE[encoding], {
        Vary: 'Accept',
        'Server-Timing': `decode;dur=${t.decodeMs.toFixed(1)}, resize;dur=${t.resizeMs.toFixed(1)}, queue;dur=${t.queueMs.toFixed(1)}, infer;dur=${t.inferMs.toFixed(1)}, matte;dur=${t.matteMs.toFixed(1)}, encode;dur=${t.encodeMs.toFixed(1)}`,
        'X-Image-Size': `${result.width}x${result.height}`,
      });
    } finally {
      metrics.inFlight.dec({ source: 'http' });
      release();
    }
  }

  async function ready(res: http.ServerResponse): Promise<void> {
    const model = modelLoaded;
    let broker: boolean | undefined;
    if (opts.brokers) {
      if (!brokerCheck || Date.now() - brokerCheck.at > 5000) {
        const reachable = await Promise.all(opts.brokers.split(',').map(tcpReachable));
        brokerCheck = { at: Date.now(), ok: reachable.some(Boolean) };
      }
      broker = brokerCheck.ok;
    }
    const ok = model && broker !== false;
    sendJson(res, ok ? 200 : 503, { ready: ok, model, ...(broker === undefined ? {} : { broker }) });
  }

  async function serveStatic(res: http.ServerResponse, pathname: string): Promise<void> {
    const name = pathname === '/' ? 'index.html' : pathname.slice(1);
    if (!/^[a-z0-9-]+\.(html|js|css|svg)$/.test(name)) throw new HttpError(404, 'ERR_NOT_FOUND', `no such page: ${pathname}`);
    const body = await fs.readFile(path.join(webRoot, name)).catch(() => {
      throw new HttpError(404, 'ERR_NOT_FOUND', `no such page: ${pathname}`);
    });
    send(res, 200, body, STATIC_TYPES[path.extname(name)], { 'Cache-Control': 'no-cache', 'Content-Security-Policy': "default-src 'self'; img-src 'self' data: blob:" });
  }

  async function models(res: http.ServerResponse): Promise<void> {
    const list = await knownModels();
    const installed = await Promise.all(list.map((m) => fs.access(path.join(modelsDir(), m.file)).then(() => true, () => false)));
    sendJson(res, 200, { default: opts.model, models: list.map((m, i) => ({ name: m.name, installed: installed[i], loaded: segmenters.has(m.name) })) });
  }

  const routes: Record<string, (req: http.IncomingMessage, res: http.ServerResponse, url: URL) => Promise<void> | void> = {
    '/v1/remove': remove,
    '/healthz': (_req, res) => send(res, 200, 'ok\n', 'text/plain; charset=utf-8'),
    '/readyz': (_req, res) => ready(res),
    '/metrics': async (_req, res) => {
      state.updateGauges();
      send(res, 200, await metrics.text(), metrics.contentType);
    },
    '/openapi.json': (_req, res) => sendJson(res, 200, openApiDocument(opts.version)),
    '/v1/models': (_req, res) => models(res),
    '/v1/state': (_req, res) => sendJson(res, 200, state.snapshot()),
    '/v1/events': (req, res) => state.stream(req, res),
  };

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const route = routes[url.pathname] ? url.pathname : url.pathname.startsWith('/v1/preview/') ? '/v1/preview' : 'static';
    res.on('finish', () => metrics.httpRequests.inc({ route, status: String(res.statusCode) }));
    const handle = async () => {
      if (opts.token && url.pathname !== '/healthz') {
        const given = tokenOf(req, url);
        if (!sameSecret(given, opts.token)) {
          throw new HttpError(401, 'ERR_UNAUTHORIZED', 'this server needs its token: Authorization: Bearer TOKEN (or ?token=TOKEN)', { 'WWW-Authenticate': 'Bearer' });
        }
        // the dashboard opened as /?token=... keeps working for its scripts and event stream
        if (url.searchParams.has('token')) res.setHeader('Set-Cookie', `bgrm_token=${encodeURIComponent(opts.token)}; HttpOnly; SameSite=Strict; Path=/`);
      }
      if (route === '/v1/preview') return state.preview(res, decodeURIComponent(url.pathname.slice('/v1/preview/'.length)));
      if (routes[url.pathname]) return routes[url.pathname](req, res, url);
      if (req.method !== 'GET' && req.method !== 'HEAD') throw new HttpError(405, 'ERR_METHOD', `${req.method} is not allowed here`);
      return serveStatic(res, url.pathname);
    };
    handle().catch((err: unknown) => {
      if (res.headersSent) return res.destroy();
      const status = statusOf(err);
      if (status === 413 && !req.readableEnded) {
        // An oversized body still arriving: keep none of it, discard it as it comes, and answer
        // when it ends (a client that is still writing when the connection closes fails with
        // EPIPE before it reads the answer). Past 4x the limit or 5 s, answer at once and close.
        let answered = false;
        let discarded = 0;
        const answer = () => {
          if (answered) return;
          answered = true;
          clearTimeout(cut);
          res.setHeader('Connection', 'close');
          sendError(res, err);
        };
        const cut = setTimeout(answer, 5000);
        req.on('data', (chunk: Buffer) => {
          discarded += chunk.length;
          if (discarded > 4 * opts.maxBody) answer();
        });
        req.on('end', answer);
        req.on('close', () => clearTimeout(cut));
        req.resume();
        return;
      }
      sendError(res, err);
    });
  });
  server.headersTimeout = 20000;
  server.requestTimeout = 120000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new BgrmError('ERR_LISTEN', `cannot listen on ${opts.host}:${opts.port}: ${err.code === 'EADDRINUSE' ? 'the port is in use; pick another with --port' : err.message}`)),
    );
    server.listen(opts.port, opts.host, () => resolve());
  });
  try {
    await defaultModel;
    await state.start();
  } catch (err) {
    server.close();
    throw err;
  }
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}`,
    metrics,
    close: async () => {
      await state.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      for (const s of segmenters.values()) (await s.catch(() => undefined))?.segmenter.close();
    },
  };
}
