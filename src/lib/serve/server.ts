// `bgrm serve`: the model over HTTP (POST /v1/remove), health, Prometheus metrics, the OpenAPI
// document, and the live dashboard of the Kafka pipeline. Binds 127.0.0.1 unless told otherwise;
// bodies, image sizes and the queue are bounded; with a token every route but /healthz needs it.
// This file is the wiring: routes, readiness, the dashboard's files, listening. The rooms beside
// it: http.ts (answers, bodies, tokens), admission.ts, loaded-models.ts, remove.ts, state.ts
// (the Kafka feed and the dashboard's view), openapi.ts, multipart.ts.
import { promises as fs } from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import { Metrics } from '../metrics';
import { native, projectRoot } from '../native';
import type { SegmenterConfig } from '../segmenter';
import { Admission } from './admission';
import { answerAfterDrain, hasToken, HttpError, listen, send, sendError, sendJson, statusOf } from './http';
import { LoadedModels } from './loaded-models';
import { openApiDocument } from './openapi';
import { removeRoute, type RemoveLimits } from './remove';
import type { StateOptions } from './kafka-feed';
import { PipelineState } from './state';

/** What serve is told; the Kafka pipeline to watch (StateOptions) is optional. */
export interface ServeOptions extends SegmenterConfig, RemoveLimits, StateOptions {
  host: string;
  port: number;
  token?: string;
  version: string;
}

export interface RunningServer {
  url: string;
  metrics: Metrics;
  close(): Promise<void>;
}

const STATIC_TYPES: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.svg': 'image/svg+xml' };

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

/** The dashboard's files (web/), by name only. */
async function serveStatic(res: http.ServerResponse, pathname: string): Promise<void> {
  const name = pathname === '/' ? 'index.html' : pathname.slice(1);
  if (!/^[a-z0-9-]+\.(html|js|css|svg)$/.test(name)) throw new HttpError(404, 'ERR_NOT_FOUND', `no such page: ${pathname}`);
  const body = await fs.readFile(path.join(projectRoot, 'web', name)).catch(() => {
    throw new HttpError(404, 'ERR_NOT_FOUND', `no such page: ${pathname}`);
  });
  send(res, 200, body, STATIC_TYPES[path.extname(name)], { 'Cache-Control': 'no-cache', 'Content-Security-Policy': "default-src 'self'; img-src 'self' data: blob:" });
}

type Route = (req: http.IncomingMessage, res: http.ServerResponse, url: URL) => Promise<void> | void;

export async function startServer(opts: ServeOptions): Promise<RunningServer> {
  const metrics = new Metrics();
  const models = new LoadedModels(opts, metrics, native().versions().onnxruntime); // listening starts meanwhile: /readyz says when it is loaded
  const admission = new Admission(opts.concurrency, opts.queue);
  const state = new PipelineState(opts, metrics);
  state.load = () => ({ inFlight: admission.inFlight, queued: admission.queued });

  let brokerCheck: { at: number; ok: boolean } | undefined;
  async function ready(res: http.ServerResponse): Promise<void> {
    const model = models.loaded;
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

  const routes: Record<string, Route> = {
    '/v1/remove': removeRoute(opts, models, admission, metrics),
    '/healthz': (_req, res) => send(res, 200, 'ok\n', 'text/plain; charset=utf-8'),
    '/readyz': (_req, res) => ready(res),
    '/metrics': async (_req, res) => {
      state.updateGauges();
      send(res, 200, await metrics.text(), metrics.contentType);
    },
    '/openapi.json': (_req, res) => sendJson(res, 200, openApiDocument(opts.version)),
    '/v1/models': async (_req, res) => sendJson(res, 200, await models.list()),
    '/v1/state': (_req, res) => sendJson(res, 200, state.snapshot()),
    '/v1/events': (req, res) => state.stream(req, res),
  };

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const route = routes[url.pathname] ? url.pathname : url.pathname.startsWith('/v1/preview/') ? '/v1/preview' : 'static';
    res.on('finish', () => metrics.httpRequests.inc({ route, status: String(res.statusCode) }));
    const handle = async () => {
      if (opts.token && url.pathname !== '/healthz') {
        if (!hasToken(req, url, opts.token)) {
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
      if (statusOf(err) === 413 && !req.readableEnded) return answerAfterDrain(req, res, err, opts.maxBody);
      sendError(res, err);
    });
  });
  server.headersTimeout = 20000;
  server.requestTimeout = 120000;
  const listening = await listen(server, opts.host, opts.port, '--port');
  try {
    await models.default;
    await state.start();
  } catch (err) {
    await listening.close();
    throw err;
  }
  return {
    url: listening.url,
    metrics,
    close: async () => {
      await state.close();
      await listening.close();
      await models.closeAll();
    },
  };
}
