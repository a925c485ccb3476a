// bgrm serve's HTTP API as a user meets it: a separate process on a free port, real images, the real
// model. Outputs match the CLI's; every documented error status is produced; it survives load
// without growing; /metrics parses as Prometheus text and moves.
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { alphaOf } from '../../src/lib/quality';
import { runCli } from '../helpers/cli';
import { request, rssKiB, startServe, type Served } from '../helpers/serve';
import { describeWith, hasTestdata, testdata } from '../helpers/testdata';

const rembg = path.join(testdata, 'rembg');

async function metricValue(url: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = (await request(`${url}/metrics`)).body.toString();
  const family = parsePrometheusTextFormat(text).find((f) => f.name === name);
  if (!family) return 0;
  return family.metrics
    .filter((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))
    .reduce((n, m) => n + Number(m.value ?? m.count ?? 0), 0);
}

describeWith('../shared/testdata/rembg', hasTestdata('rembg'))('bgrm serve: HTTP API', () => {
  let server: Served;
  let tmp: string;
  let photos: string[];
  beforeAll(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'bgrm-serve-'));
    photos = (await fs.readdir(rembg)).filter((f) => f.endsWith('.jpg')).sort();
    server = await startServe(['--max-body', String(2 * 1024 * 1024), '--queue', '64']);
  }, 120000);
  afterAll(async () => {
    expect(await server.stop()).toBe(0);
    await fs.rm(tmp, { recursive: true, force: true });
  });

  it('answers in the format asked for: output-format, else Accept; JPEG only where nothing is transparent', async () => {
    const bytes = await fs.readFile(path.join(rembg, photos[0]));
    const post = (query: string, accept?: string) =>
      request(`${server.url}/v1/remove${query}`, { body: bytes, headers: { 'Content-Type': 'image/jpeg', ...(accept ? { Accept: accept } : {}) } });
    const png = await post('');
    const webp = await post('', 'image/webp,image/png;q=0.8');
    expect([webp.status, webp.headers['content-type'], webp.headers.vary]).toEqual([200, 'image/webp', 'Accept']);
    expect(webp.body.subarray(8, 12).toString()).toBe('WEBP');
    // lossless WebP keeps the same alpha as the PNG
    const [a, b] = [await alphaOf(png.body), await alphaOf(webp.body)];
    expect(b.data.equals(a.data)).toBe(true);
    expect((await post('?output-format=png', 'image/webp')).headers['content-type']).toBe('image/png');
    const lossy = await post('?output-format=webp&quality=60');
    expect(lossy.body.length).toBeLessThan(webp.body.length);
    const jpeg = await post('?background=white', 'image/jpeg');
    expect([jpeg.status, jpeg.headers['content-type']]).toEqual([200, 'image/jpeg']);
    expect([...jpeg.body.subarray(0, 3)]).toEqual([0xff, 0xd8, 0xff]);
    const transparentJpeg = await post('', 'image/jpeg');
    expect([transparentJpeg.status, JSON.parse(transparentJpeg.body.toString()).error.code]).toEqual([406, 'ERR_NOT_ACCEPTABLE']);
    expect(JSON.parse(transparentJpeg.body.toString()).error.message).toMatch(/no alpha/);
    expect((await post('?output-format=gif')).status).toBe(400);
    const doc = JSON.parse((await request(`${server.url}/openapi.json`)).body.toString());
    expect(Object.keys(doc.paths['/v1/remove'].post.responses[200].content)).toEqual(['image/png', 'image/webp', 'image/jpeg']);
  });

  it('binds 127.0.0.1 by default; /healthz, /readyz and /openapi.json answer', async () => {
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect((await request(`${server.url}/healthz`)).status).toBe(200);
    const ready = await request(`${server.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.body.toString())).toMatchObject({ ready: true, model: true });
    const doc = JSON.parse((await request(`${server.url}/openapi.json`)).body.toString());
    expect(doc.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/v1/remove', '/healthz', '/readyz', '/metrics']));
  });

  it('POST /v1/remove returns the same cut-out as the CLI for every test photo (raw and multipart bodies)', async () => {
    for (const photo of photos) {
      const bytes = await fs.readFile(path.join(rembg, photo));
      const res = await request(`${server.url}/v1/remove`, { body: bytes, headers: { 'Content-Type': 'image/jpeg' } });
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toBe('image/png');
      expect(res.headers['server-timing']).toMatch(/infer;dur=/);
      const cliOut = path.join(tmp, photo.replace(/\.jpg$/, '.png'));
      expect((await runCli(['process', path.join(rembg, photo), '-o', cliOut])).code).toBe(0);
      const viaHttp = await alphaOf(res.body);
      const viaCli = await alphaOf(await fs.readFile(cliOut));
      expect([viaHttp.width, viaHttp.height]).toEqual([viaCli.width, viaCli.height]);
      expect(viaHttp.data.equals(viaCli.data)).toBe(true);
    }
    // the same image as the file part of a form
    const bytes = await fs.readFile(path.join(rembg, photos[0]));
    const boundary = 'bgrm-test-boundary';
    const form = Buffer.concat([
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n`),
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="image"; filename="${photos[0]}"\r\nContent-Type: image/jpeg\r\n\r\n`),
      bytes,
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ]);
    const res = await request(`${server.url}/v1/remove`, { body: form, headers: { 'Content-Type': `multipart/form-data; boundary=${boundary}` } });
    expect(res.status).toBe(200);
    const cli = await alphaOf(await fs.readFile(path.join(tmp, photos[0].replace(/\.jpg$/, '.png'))));
    expect((await alphaOf(res.body)).data.equals(cli.data)).toBe(true);
  });

  it('format=mask and background=white match the CLI with the same options', async () => {
    const file = path.join(rembg, photos[0]);
    const bytes = await fs.readFile(file);
    const mask = await request(`${server.url}/v1/remove?format=mask`, { body: bytes, headers: { 'Content-Type': 'image/jpeg' } });
    expect(mask.status).toBe(200);
    const cliMask = path.join(tmp, 'mask.png');
    expect((await runCli(['process', file, '-o', cliMask, '--format', 'mask'])).code).toBe(0);
    expect(mask.body.equals(await fs.readFile(cliMask))).toBe(true);
    const white = await request(`${server.url}/v1/remove?background=white`, { body: bytes, headers: { 'Content-Type': 'image/jpeg' } });
    const cliWhite = path.join(tmp, 'white.png');
    expect((await runCli(['process', file, '-o', cliWhite, '--background', 'white'])).code).toBe(0);
    expect(white.body.equals(await fs.readFile(cliWhite))).toBe(true);
  });

  it('errors: 400 bad image, 413 too large (declared, streamed, dimensions), 415 unsupported, JSON with a code', async () => {
    const jpg = await fs.readFile(path.join(rembg, photos[0]));
    const post = (body: Buffer, type = 'image/jpeg', query = '') => request(`${server.url}/v1/remove${query}`, { body, headers: { 'Content-Type': type } });
    const code = (r: { body: Buffer }) => JSON.parse(r.body.toString()).error.code;

    const truncated = await post(jpg.subarray(0, jpg.length >> 1));
    expect([truncated.status, code(truncated)]).toEqual([400, 'ERR_DECODE']);
    const badOption = await post(jpg, 'image/jpeg', '?format=gif');
    expect([badOption.status, code(badOption)]).toEqual([400, 'ERR_BAD_REQUEST']);
    const pathAsModel = await post(jpg, 'image/jpeg', '?model=../../etc/passwd');
    expect(pathAsModel.status).toBe(400);

    const declared = await post(Buffer.alloc(3 * 1024 * 1024));
    expect([declared.status, code(declared)]).toEqual([413, 'ERR_BODY_TOO_LARGE']);
    // no Content-Length: refused once the streamed body passes the limit; the rest is discarded, not kept
    const chunks = Array.from({ length: 64 }, () => Buffer.alloc(64 * 1024));
    const streamed = await request(`${server.url}/v1/remove`, { chunks, headers: { 'Content-Type': 'image/jpeg', 'Transfer-Encoding': 'chunked' } });
    expect([streamed.status, code(streamed)]).toEqual([413, 'ERR_BODY_TOO_LARGE']);
    const huge = Buffer.from(await fs.readFile(path.join(rembg, 'car-1.jpg'))); // a baseline JPEG
    const sof = huge.indexOf(Buffer.from([0xff, 0xc0]));
    huge.writeUInt16BE(60000, sof + 5);
    huge.writeUInt16BE(60000, sof + 7);
    const dims = await post(huge);
    expect([dims.status, code(dims)]).toEqual([413, 'ERR_IMAGE_TOO_LARGE']);

    const text = await post(Buffer.from('hello'), 'text/plain');
    expect([text.status, code(text)]).toEqual([415, 'ERR_UNSUPPORTED_MEDIA_TYPE']);
    const avi = await post(Buffer.from('RIFF\x04\x00\x00\x00AVI LIST', 'latin1'), 'application/octet-stream');
    expect([avi.status, code(avi)]).toEqual([415, 'ERR_UNSUPPORTED_FORMAT']);
    const gif = await post(Buffer.from('GIF89a\x01\x00\x01\x00\x00\x00\x00;', 'latin1'), 'image/gif'); // a GIF, but broken
    expect([gif.status, code(gif)]).toEqual([400, 'ERR_DECODE']);
    const get = await request(`${server.url}/v1/remove`);
    expect(get.status).toBe(405);
    expect((await request(`${server.url}/../../etc/passwd`)).status).toBe(404);
    expect((await request(`${server.url}/v1/remove`)).headers['content-type']).toMatch(/json/);
  });

  it('/metrics parses as Prometheus text and its counters move with requests', async () => {
    const before = await metricValue(server.url, 'bgrm_frames_processed_total', { source: 'http' });
    const failedBefore = await metricValue(server.url, 'bgrm_frames_failed_total', { reason: 'ERR_DECODE' });
    const jpg = await fs.readFile(path.join(rembg, photos[0]));
    for (let i = 0; i < 3; i++) expect((await request(`${server.url}/v1/remove`, { body: jpg, headers: { 'Content-Type': 'image/jpeg' } })).status).toBe(200);
    await request(`${server.url}/v1/remove`, { body: jpg.subarray(0, 100), headers: { 'Content-Type': 'image/jpeg' } });
    expect(await metricValue(server.url, 'bgrm_frames_processed_total', { source: 'http' })).toBe(before + 3);
    expect(await metricValue(server.url, 'bgrm_frames_failed_total', { reason: 'ERR_DECODE' })).toBe(failedBefore + 1);
    const families = parsePrometheusTextFormat((await request(`${server.url}/metrics`)).body.toString());
    const names = families.map((f) => f.name);
    expect(names).toEqual(expect.arrayContaining(['bgrm_stage_seconds', 'bgrm_end_to_end_seconds', 'bgrm_frames_in_flight', 'bgrm_model_info', 'bgrm_frames_dead_lettered_total', 'bgrm_frames_skipped_stale_total', 'bgrm_consumer_lag', 'bgrm_process_peak_resident_memory_bytes']));
    // the peak resident set is at least what the process holds now
    const peak = Number(families.find((f) => f.name === 'bgrm_process_peak_resident_memory_bytes')!.metrics[0].value);
    expect(peak).toBeGreaterThanOrEqual(rssKiB(server.child.pid!) * 1024 * 0.9);
    const stage = families.find((f) => f.name === 'bgrm_stage_seconds')!;
    expect(stage.type).toBe('HISTOGRAM');
    // This parser folds a histogram's label sets into one when `le` comes first (as prom-client
    // writes it) and then loses _count; the +Inf bucket still counts the observations.
    expect(Number(stage.metrics[0].buckets!['+Inf'])).toBeGreaterThanOrEqual(3);
    const e2e = families.find((f) => f.name === 'bgrm_end_to_end_seconds')!;
    expect(Number(e2e.metrics[0].buckets!['+Inf'])).toBeGreaterThanOrEqual(3);
    const info = families.find((f) => f.name === 'bgrm_model_info')!.metrics[0].labels!;
    expect(info.model).toBe('u2netp');
    expect(info.onnxruntime).toMatch(/^\d+\.\d+/);
  });

  it('load: 200 requests from 20 clients all succeed or get 503 with Retry-After; RSS stays within 15%', async () => {
    const jpg = await fs.readFile(path.join(rembg, 'car-1.jpg'));
    const statuses: number[] = [];
    let rssAfter20 = 0;
    let next = 0;
    const client = async () => {
      while (next < 200) {
        next++;
        const res = await request(`${server.url}/v1/remove`, { body: jpg, headers: { 'Content-Type': 'image/jpeg' } });
        if (res.status === 503) expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
        else expect(res.status).toBe(200);
        statuses.push(res.status);
        if (statuses.length === 20) rssAfter20 = rssKiB(server.child.pid!);
      }
    };
    await Promise.all(Array.from({ length: 20 }, client));
    const rssEnd = rssKiB(server.child.pid!);
    const ok = statuses.filter((s) => s === 200).length;
    const peak = await metricValue(server.url, 'bgrm_process_peak_resident_memory_bytes', {});
    process.stdout.write(
      `load: ${statuses.length} requests, ${ok} x 200, ${statuses.length - ok} x 503; RSS after 20: ${(rssAfter20 / 1024).toFixed(1)} MiB, after 200: ${(rssEnd / 1024).toFixed(1)} MiB (${((rssEnd / rssAfter20 - 1) * 100).toFixed(1)}%), peak ${(peak / 2 ** 20).toFixed(1)} MiB\n`,
    );
    expect(statuses).toHaveLength(200);
    expect(ok).toBeGreaterThan(0);
    expect(rssEnd).toBeLessThanOrEqual(rssAfter20 * 1.15);
    expect((await request(`${server.url}/healthz`)).status).toBe(200);
  }, 600000);

  it('a full queue answers 503 with Retry-After', async () => {
    const small = await startServe(['--concurrency', '1', '--queue', '0']);
    try {
      const jpg = await fs.readFile(path.join(rembg, 'car-1.jpg'));
      const replies = await Promise.all(Array.from({ length: 6 }, () => request(`${small.url}/v1/remove`, { body: jpg, headers: { 'Content-Type': 'image/jpeg' } })));
      const busy = replies.filter((r) => r.status === 503);
      expect(busy.length).toBeGreaterThan(0);
      expect(replies.filter((r) => r.status === 200).length).toBeGreaterThan(0);
      for (const r of busy) {
        expect(r.headers['retry-after']).toBe('1');
        expect(JSON.parse(r.body.toString()).error.code).toBe('ERR_BUSY');
      }
    } finally {
      await small.stop();
    }
  });

  it('--token: every route but /healthz needs it (header, query or the cookie it sets)', async () => {
    const locked = await startServe(['--token', 's3cret-token']);
    try {
      const jpg = await fs.readFile(path.join(rembg, 'car-1.jpg'));
      expect((await request(`${locked.url}/healthz`)).status).toBe(200);
      for (const route of ['/readyz', '/metrics', '/openapi.json', '/', '/v1/state']) {
        const r = await request(`${locked.url}${route}`);
        expect([route, r.status]).toEqual([route, 401]);
      }
      const denied = await request(`${locked.url}/v1/remove`, { body: jpg, headers: { 'Content-Type': 'image/jpeg', Authorization: 'Bearer wrong' } });
      expect([denied.status, JSON.parse(denied.body.toString()).error.code]).toEqual([401, 'ERR_UNAUTHORIZED']);
      const allowed = await request(`${locked.url}/v1/remove`, { body: jpg, headers: { 'Content-Type': 'image/jpeg', Authorization: 'Bearer s3cret-token' } });
      expect(allowed.status).toBe(200);
      const page = await request(`${locked.url}/?token=s3cret-token`);
      expect(page.status).toBe(200);
      const cookie = String(page.headers['set-cookie']).split(';')[0];
      expect((await request(`${locked.url}/app.js`, { headers: { Cookie: cookie } })).status).toBe(200);
    } finally {
      await locked.stop();
    }
  });
});
