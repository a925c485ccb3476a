// The whole pipeline watched: capture -> real broker -> a worker (with --metrics-port and status
// records) -> output topic, and `bgrm serve` showing it, checked over HTTP and in real headless
// Chromium (Debian's /usr/bin/chromium driven by playwright-core; no browser download).
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import * as path from 'node:path';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { startBroker, stopBroker, testPort } from '../helpers/kafka';
import { request, spawnUntil, startServe, type Served } from '../helpers/serve';
import { spawnBgrm } from '../helpers/cli';
import { describeWith, hasTestdata, root, testdata } from '../helpers/testdata';

const PORT = testPort(500);
const CHROMIUM = process.env.BGRM_CHROMIUM ?? '/usr/bin/chromium';
const artifacts = path.join(root, 'test', 'artifacts');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function counter(url: string, name: string, labels: Record<string, string>): Promise<number> {
  const families = parsePrometheusTextFormat((await request(`${url}/metrics`)).body.toString());
  const family = families.find((f) => f.name === name);
  return (family?.metrics ?? []).filter((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v)).reduce((n, m) => n + Number(m.value), 0);
}

async function until<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 120000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(500);
  }
}

describeWith('../shared/testdata/video and rembg', hasTestdata('video') && hasTestdata('rembg'))('bgrm serve watching a real pipeline', () => {
  let brokers: string;
  let capture: ChildProcess;
  let worker: Served;
  let server: Served;
  beforeAll(async () => {
    brokers = startBroker(PORT);
    // a paced, looping camera so that previews keep changing
    capture = spawnBgrm(
      ['capture', '--video', path.join(testdata, 'video', 'breakdance.mp4'), '--camera-id', 'cam-live', '--brokers', brokers, '--topic', 'live-in', '--fps', '2', '--loop', '--max-frames', '600', '--partitions', '2'],
      { stdio: 'ignore' },
    );
    worker = await spawnUntil(
      ['process', '--brokers', brokers, '--topic', 'live-in', '--group', 'dash', '--output-topic', 'live-out', '--metrics-port', '0', '--threads', '1', '--worker-id', 'dash-w1'],
      /metrics: (http:\/\/\S+)\/metrics/,
    );
    server = await startServe(['--brokers', brokers, '--topic', 'live-in', '--output-topic', 'live-out']);
  }, 300000);
  afterAll(async () => {
    await server?.stop();
    await worker?.stop();
    if (capture && capture.exitCode === null) {
      // it flushes its last frames to the broker, so it stops before the broker does
      const exited = new Promise((res) => capture.once('close', res));
      capture.kill('SIGTERM');
      await exited;
    }
    stopBroker(PORT);
  });

  it('the worker serves /metrics and /healthz, and its counters move as frames go through the broker', async () => {
    expect(worker.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect((await request(`${worker.url}/healthz`)).status).toBe(200);
    const first = await until('a processed frame', async () => (await counter(worker.url, 'bgrm_frames_processed_total', { source: 'kafka' })) || undefined);
    const later = await until('more processed frames', async () => {
      const n = await counter(worker.url, 'bgrm_frames_processed_total', { source: 'kafka' });
      return n > first ? n : undefined;
    });
    expect(later).toBeGreaterThan(first);
    // end-to-end latency is observed when a frame becomes visible: at its transaction's commit
    const e2e = await until('an end-to-end latency observation', async () => {
      const families = parsePrometheusTextFormat((await request(`${worker.url}/metrics`)).body.toString());
      return families.find((f) => f.name === 'bgrm_end_to_end_seconds' && f.metrics.length > 0);
    });
    expect(Number(e2e.metrics[0].buckets!['+Inf'])).toBeGreaterThan(0);
    const families = parsePrometheusTextFormat((await request(`${worker.url}/metrics`)).body.toString());
    expect(families.find((f) => f.name === 'bgrm_consumer_lag')).toBeDefined();
    expect(families.find((f) => f.name === 'bgrm_transaction_commit_interval_seconds')).toBeDefined();
  }, 300000);

  it('serve sees the worker through its status records: /v1/state, /metrics and /readyz', async () => {
    const state = await until('the worker in /v1/state', async () => {
      const s = JSON.parse((await request(`${server.url}/v1/state`)).body.toString());
      const w = s.workers.find((x: { workerId: string }) => x.workerId === 'dash-w1');
      return w && w.processed > 0 && w.partitions.length > 0 ? s : undefined;
    });
    expect(state.kafka).toMatchObject({ connected: true, topic: 'live-in', outputTopic: 'live-out' });
    expect(await counter(server.url, 'bgrm_worker_frames_processed', { worker: 'dash-w1' })).toBeGreaterThan(0);
    const ready = JSON.parse((await request(`${server.url}/readyz`)).body.toString());
    expect(ready).toMatchObject({ ready: true, model: true, broker: true });
    const camera = await until('a camera preview', async () => {
      const s = JSON.parse((await request(`${server.url}/v1/state`)).body.toString());
      return s.cameras.find((c: { id: string; hasFrame: boolean }) => c.id === 'cam-live' && c.hasFrame);
    });
    expect(camera.content).toBe('mask/png');
    const preview = await request(`${server.url}/v1/preview/cam-live`);
    expect(preview.status).toBe(200);
    expect(preview.headers['content-type']).toBe('image/png');
    expect((await request(`${server.url}/v1/preview/cam-live?part=frame`)).headers['content-type']).toBe('image/jpeg');
    expect((await request(`${server.url}/v1/preview/nope`)).status).toBe(404);
  }, 300000);

  const chromiumIt = existsSync(CHROMIUM) ? it : it.skip;
  if (!existsSync(CHROMIUM)) console.warn(`SKIPPED: ${CHROMIUM} is missing (bash scripts/setup.sh --test installs Debian's chromium)`);
  chromiumIt('the dashboard in headless Chromium: the worker, non-zero throughput, a live preview, and the drop zone', async () => {
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
      const problems: string[] = [];
      page.on('pageerror', (e) => problems.push(e.message));
      await page.goto(`${server.url}/`);
      await page.locator('tr[data-worker="dash-w1"]').waitFor({ timeout: 60000 });
      await page.waitForFunction(() => {
        const row = document.querySelector('tr[data-worker="dash-w1"]') as HTMLTableRowElement | null;
        return !!row && Number(row.cells[3].textContent) > 0;
      }, undefined, { timeout: 60000 });
      expect(await page.locator('#conn').textContent()).toContain('broker');

      // the preview is drawn, then redrawn with a later frame whose pixels differ
      const canvas = page.locator('.camera[data-camera="cam-live"] canvas');
      await canvas.and(page.locator('[data-frame]')).waitFor({ timeout: 60000 });
      const grab = async () => {
        const g = await canvas.evaluate((c: HTMLCanvasElement) => ({ frame: Number(c.dataset.frame), pixels: c.toDataURL('image/png') }));
        return { frame: g.frame, pixels: createHash('sha256').update(g.pixels).digest('hex') }; // a digest: short messages on failure
      };
      const a = await grab();
      await page.waitForFunction((f) => Number(document.querySelector('.camera canvas')?.getAttribute('data-frame')) !== f, a.frame, { timeout: 60000 });
      const b = await grab();
      expect(b.frame).not.toBe(a.frame);
      expect(b.pixels).not.toBe(a.pixels);
      // a cut-out has transparent pixels where the background was
      const transparent = await canvas.evaluate((c: HTMLCanvasElement) => {
        const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 3; i < d.length; i += 4) if (d[i] === 0) n++;
        return n / (d.length / 4);
      });
      expect(transparent).toBeGreaterThan(0.2);

      // the drop zone posts a photo to /v1/remove and shows the cut-out
      await page.setInputFiles('#file', path.join(testdata, 'rembg', 'car-1.jpg'));
      await page.waitForFunction(() => {
        const img = document.getElementById('result') as HTMLImageElement;
        return !img.hidden && img.complete && img.naturalWidth > 0;
      }, undefined, { timeout: 60000 });
      expect(await page.locator('#result-info').textContent()).toMatch(/\d+x\d+ in \d+ ms/);
      await sleep(1500); // one more event, so the charts have a few points
      await fs.mkdir(artifacts, { recursive: true });
      await page.screenshot({ path: path.join(artifacts, 'dashboard.png'), fullPage: true });
      expect(problems).toEqual([]);
    } finally {
      await browser.close();
    }
  }, 300000);
});
