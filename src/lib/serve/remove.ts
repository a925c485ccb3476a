// POST /v1/remove: one image in, its cut-out (or mask, or the subject on a colour) out, in the
// format the request asks for. Parameters are checked before the request takes a slot; the body
// is read (bounded) only once it has one.
import type * as http from 'node:http';
import { parseColor } from '../background';
import { errorCode } from '../errors';
import type { Metrics } from '../metrics';
import type { ProcessOptions } from '../native';
import { OUTPUT_FORMATS, type OutputFormat } from '../output-format';
import type { Admission } from './admission';
import { HttpError, readBody, send } from './http';
import type { LoadedModels } from './loaded-models';
import { imageFromMultipart } from './multipart';

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

export interface RemoveLimits {
  /** The default model (model= names another). */
  model: string;
  /** Largest request body in bytes; larger ones are refused before they are read whole. */
  maxBody: number;
  /** Requests inside the native core at once. */
  concurrency: number;
  /** Requests waiting for a slot; beyond this, 503 with Retry-After. */
  queue: number;
  maxPixels: number;
  maxSide: number;
  pngLevel: number;
}

/** What the request asks for: render options and the model, or a 4xx naming the bad parameter. */
function requested(req: http.IncomingMessage, url: URL, limits: RemoveLimits): { options: ProcessOptions; encoding: OutputFormat; multipart: boolean; type: string; model: string } {
  if (req.method !== 'POST') throw new HttpError(405, 'ERR_METHOD', 'use POST with the image as the body', { Allow: 'POST' });
  const type = (req.headers['content-type'] ?? 'application/octet-stream').toLowerCase();
  const multipart = type.startsWith('multipart/form-data');
  if (!multipart && !/^(image\/(jpeg|jpg|pjpeg|png|webp|tiff|bmp|x-ms-bmp|gif|heic|heif|avif)|application\/octet-stream)\b/.test(type)) {
    throw new HttpError(415, 'ERR_UNSUPPORTED_MEDIA_TYPE', `Content-Type ${type} is not supported; send an image (image/jpeg, image/png, image/webp, ...), application/octet-stream or multipart/form-data`);
  }
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (declared > limits.maxBody) {
    throw new HttpError(413, 'ERR_BODY_TOO_LARGE', `request body of ${declared} bytes is over --max-body ${limits.maxBody}`, { Connection: 'close' });
  }
  const format = url.searchParams.get('format') ?? 'rgba';
  if (format !== 'rgba' && format !== 'mask') throw new HttpError(400, 'ERR_BAD_REQUEST', `format=${format}: use rgba or mask`);
  const bg = url.searchParams.get('background');
  const encoding = responseFormat(url.searchParams.get('output-format'), req.headers.accept, format === 'mask' || !!bg);
  const quality = url.searchParams.get('quality');
  const q = quality === null ? 0 : Number(quality);
  if (!Number.isInteger(q) || q < 0 || q > 100) throw new HttpError(400, 'ERR_BAD_REQUEST', `quality=${quality}: a whole number 1-100 (WebP: lossy at that quality; JPEG: its quality)`);
  const options: ProcessOptions = { output: format, encoding, quality: q, pngLevel: limits.pngLevel, maxPixels: limits.maxPixels, maxSide: limits.maxSide };
  if (bg) {
    const color = parseColor(bg);
    if (!color) throw new HttpError(400, 'ERR_BAD_REQUEST', `background=${bg} is not a colour (#rrggbb, #rgb, white, black, ...)`);
    options.color = color;
  }
  return { options, encoding, multipart, type, model: url.searchParams.get('model') ?? limits.model };
}

/** The route's handler. */
export function removeRoute(limits: RemoveLimits, models: LoadedModels, admission: Admission, metrics: Metrics) {
  return async (req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<void> => {
    const arrived = performance.now();
    const r = requested(req, url, limits);
    models.check(r.model);
    const release = await admission.enter();
    if (!release) {
      metrics.fail('http', 'ERR_BUSY');
      throw new HttpError(503, 'ERR_BUSY', `all ${limits.concurrency} slots and ${limits.queue} queue places are taken; retry shortly`, { 'Retry-After': '1' });
    }
    metrics.inFlight.inc({ source: 'http' });
    try {
      const body = await readBody(req, limits.maxBody);
      const image = r.multipart ? imageFromMultipart(body, r.type) : body;
      const { segmenter } = await models.get(r.model);
      const result = await segmenter.process(image, r.options).catch((err: unknown) => {
        metrics.fail('http', errorCode(err));
        throw err;
      });
      const t = result.timings;
      metrics.observe('http', t, performance.now() - arrived);
      send(res, 200, result.data, MEDIA_TYPE[r.encoding], {
        Vary: 'Accept',
        'Server-Timing': `decode;dur=${t.decodeMs.toFixed(1)}, resize;dur=${t.resizeMs.toFixed(1)}, queue;dur=${t.queueMs.toFixed(1)}, infer;dur=${t.inferMs.toFixed(1)}, matte;dur=${t.matteMs.toFixed(1)}, encode;dur=${t.encodeMs.toFixed(1)}`,
        'X-Image-Size': `${result.width}x${result.height}`,
      });
    } finally {
      metrics.inFlight.dec({ source: 'http' });
      release();
    }
  };
}
