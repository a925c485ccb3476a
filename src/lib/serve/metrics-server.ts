// A worker's own small HTTP server (--metrics-port): /metrics (Prometheus) and /healthz, on
// 127.0.0.1 unless told otherwise.
import * as http from 'node:http';
import type { Metrics } from '../metrics';
import { listen } from './http';

export async function startMetricsServer(metrics: Metrics, port: number, host = '127.0.0.1'): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET' }).end();
    } else if (path === '/metrics') {
      metrics.text().then(
        (text) => res.writeHead(200, { 'Content-Type': metrics.contentType }).end(text),
        () => res.writeHead(500).end(),
      );
    } else if (path === '/healthz') {
      res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' }).end('ok\n');
    } else {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('this worker serves /metrics and /healthz\n');
    }
  });
  return listen(server, host, port, '--metrics-port');
}
