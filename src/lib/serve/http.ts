// HTTP plumbing shared by `bgrm serve` and a worker's metrics server: listening (with the address
// it got), JSON and error answers whose status follows the error code, bounded request bodies
// (and the drain of an oversized one), and token checks.
import { timingSafeEqual } from 'node:crypto';
import type * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { BgrmError, errorCode, errorMessage } from '../errors';

/** An error with the HTTP status (and headers) of its answer. */
export class HttpError extends BgrmError {
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
export function statusOf(err: unknown): number {
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

export function send(res: http.ServerResponse, status: number, body: string | Buffer, type: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), 'X-Content-Type-Options': 'nosniff', ...headers });
  res.end(body);
}

export function sendJson(res: http.ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  send(res, status, JSON.stringify(value), 'application/json; charset=utf-8', headers);
}

/** The error as JSON ({error: {code, message}}) with its status and headers. */
export function sendError(res: http.ServerResponse, err: unknown): void {
  sendJson(res, statusOf(err), { error: { code: errorCode(err), message: errorMessage(err) } }, err instanceof HttpError ? err.headers : {});
}

/** The whole body, refused with 413 as soon as it passes `limit` bytes (what arrived is dropped). */
export function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
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

/**
 * Answers an error while an oversized body is still arriving: keep none of it, discard it as it
 * comes, and answer when it ends (a client that is still writing when the connection closes fails
 * with EPIPE before it reads the answer). Past 4x the limit or 5 s, answer at once and close.
 */
export function answerAfterDrain(req: http.IncomingMessage, res: http.ServerResponse, err: unknown, limit: number): void {
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
    if (discarded > 4 * limit) answer();
  });
  req.on('end', answer);
  req.on('close', () => clearTimeout(cut));
  req.resume();
}

/** Does the request carry the token (Authorization: Bearer, ?token= or the dashboard's cookie)? Compared in constant time. */
export function hasToken(req: http.IncomingMessage, url: URL, token: string): boolean {
  const auth = req.headers.authorization;
  const cookie = /(?:^|;\s*)bgrm_token=([^;]+)/.exec(req.headers.cookie ?? '');
  const given = auth?.startsWith('Bearer ') ? auth.slice(7).trim() : (url.searchParams.get('token') ?? (cookie ? decodeURIComponent(cookie[1]) : undefined));
  if (!given) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Listens on host:port; resolves the server's URL and a close that ends open connections too. */
export async function listen(server: http.Server, host: string, port: number, what: string): Promise<{ url: string; close(): Promise<void> }> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new BgrmError('ERR_LISTEN', `cannot listen on ${host}:${port} (${what}): ${err.code === 'EADDRINUSE' ? 'the port is in use; pick another' : err.message}`)),
    );
    server.listen(port, host, () => resolve());
  });
  const a = server.address() as AddressInfo;
  return {
    url: `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
