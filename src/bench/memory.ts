// npm run bench:memory: peak RSS and end-to-end frames/s of `bgrm process` (default settings, a
// folder of 854x480 DAVIS JPEGs -> RGBA PNGs), with the memory plan of ONNX Runtime's defaults
// ('pattern': memory pattern planner, a doubling arena per session, the original graph) against
// bgrm's ('lean': no pattern, no buffer reuse plan, one arena extended by what is asked, the lean
// graph), in one run; 'lean-reuse' is the lean plan with the buffer reuse plan on (the default before).
// 'lean/glibc-mmap' is the lean plan with glibc's own (rising) mmap threshold instead of bgrm's 1 MiB.
// Then `bgrm serve` (u2netp, default settings): the rembg photos once each as PNG and WebP, then 200
// requests from 20 clients; RSS after them and the peak, with bgrm's mmap threshold and glibc's.
//   --frames N (200)  --testdata DIR  --models a,b (default u2netp,u2netp-int8,u2net; u2net when
//   installed, about 5 minutes more)  --plans a,b (default pattern,lean-reuse,lean,lean/glibc-mmap)
//   --no-serve  --json
import { spawn } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { leanModel } from '../lib/model-lean';
import { resolveModel } from '../lib/models';
import { projectRoot } from '../lib/native';
import { procStatusKiB } from '../lib/rss';
import { arg, benchModels, cli, runProcess } from './common';

interface Summary {
  succeeded: number;
  framesPerSecond: number;
  peakRssBytes: number;
  parallelRuns: number;
  threads: number;
}

interface Row {
  model: string;
  plan: string;
  frames: number;
  fps: number;
  peakMiB: number;
  runs: string;
}

interface ServeRow {
  malloc: string;
  requests: number;
  ok: number;
  afterMiB: number;
  peakMiB: number;
  seconds: number;
}

function post(url: string, body: Buffer, accept?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', headers: { 'Content-Type': 'image/jpeg', ...(accept ? { Accept: accept } : {}) } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * `bgrm serve` as the CI's load test meets it: every photo once as PNG and once as WebP, then 200
 * requests of one photo from 20 clients. `env` is added to the server's environment.
 */
async function measureServe(photos: string[], malloc: string, env: NodeJS.ProcessEnv): Promise<ServeRow> {
  const child = spawn(process.execPath, [cli, 'serve', '--port', '0', '--queue', '64'], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let err = '';
      child.stderr!.on('data', (d: Buffer) => {
        err += d.toString();
        const m = /bgrm serve: (http:\/\/[^/\s]+)\//.exec(err);
        if (m) resolve(m[1]);
      });
      child.on('close', (code) => reject(new Error(`bgrm serve exited ${code}: ${err.slice(-500)}`)));
    });
    const t0 = Date.now();
    for (const photo of photos) {
      const bytes = await fs.readFile(photo);
      await post(`${url}/v1/remove`, bytes);
      await post(`${url}/v1/remove`, bytes, 'image/webp');
    }
    const body = await fs.readFile(photos.find((p) => p.endsWith('car-1.jpg')) ?? photos[0]);
    let next = 0;
    let ok = 0;
    const client = async () => {
      while (next < 200) {
        next++;
        if ((await post(`${url}/v1/remove`, body)) === 200) ok++;
      }
    };
    await Promise.all(Array.from({ length: 20 }, client));
    return { malloc, requests: 200, ok, afterMiB: (procStatusKiB('VmRSS', child.pid!) ?? 0) / 1024, peakMiB: (procStatusKiB('VmHWM', child.pid!) ?? 0) / 1024, seconds: (Date.now() - t0) / 1000 };
  } finally {
    child.kill('SIGTERM');
    await new Promise((resolve) => (child.exitCode === null && child.signalCode === null ? child.once('close', resolve) : resolve(undefined)));
  }
}

async function main(): Promise<void> {
  const frames = Number(arg('frames', '200'));
  const testdata = path.resolve(arg('testdata', path.join(projectRoot, '..', 'shared', 'testdata')));
  const json = process.argv.includes('--json');
  const davis = path.join(testdata, 'davis');
  const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'bgrm-bench-mem-'));
  try {
    // The frames, copied to a folder of their own (the process command walks regular files).
    const input = path.join(tmp, 'frames');
    await fs.mkdir(input);
    let n = 0;
    for (const seq of (await fs.readdir(davis)).sort()) {
      for (const f of (await fs.readdir(path.join(davis, seq))).filter((x) => x.endsWith('.jpg')).sort()) {
        if (n >= frames) break;
        await fs.copyFile(path.join(davis, seq, f), path.join(input, `${String(n++).padStart(4, '0')}.jpg`));
      }
    }
    const u2net = await resolveModel('u2net').catch(() => undefined);
    const models = await benchModels(tmp, path.join(testdata, 'video', 'dance-twirl.mp4'));
    if (u2net) await fs.symlink(u2net.path, path.join(process.env.BGRM_MODELS_DIR!, 'u2net.onnx'));
    // Lean files made here, outside the measured processes (a first run makes its own once).
    for (const m of ['u2netp', ...(u2net ? ['u2net'] : [])]) await leanModel(path.join(process.env.BGRM_MODELS_DIR!, `${m}.onnx`));
    process.stderr.write(`bench:memory: ${n} frames of 854x480, ${os.availableParallelism()} cores; ${models.int8Note}${u2net ? '' : '; u2net not installed (bgrm models pull u2net) so not measured'}\n`);

    const rows: Row[] = [];
    const plans = arg('plans', 'pattern,lean-reuse,lean,lean/glibc-mmap').split(',');
    const wanted = arg('models', 'u2netp,u2netp-int8,u2net').split(',');
    for (const model of ['u2netp', 'u2netp-int8', ...(u2net ? ['u2net'] : [])].filter((m) => wanted.includes(m))) {
      for (const plan of plans) {
        process.env.BGRM_ORT_MEMORY = plan.split('/')[0];
        if (plan.endsWith('/glibc-mmap')) process.env.BGRM_MMAP_THRESHOLD = '0';
        else delete process.env.BGRM_MMAP_THRESHOLD;
        const out = path.join(tmp, `out-${model}-${plan}`);
        const s = await runProcess<Summary>([input, '-o', out, '-m', model, '-q']);
        rows.push({ model, plan, frames: s.succeeded, fps: s.framesPerSecond, peakMiB: s.peakRssBytes / 2 ** 20, runs: `${s.parallelRuns} x ${s.threads}` });
        process.stderr.write(`  ${model} ${plan}: ${s.framesPerSecond.toFixed(2)} frames/s, peak ${(s.peakRssBytes / 2 ** 20).toFixed(0)} MiB\n`);
        await fs.rm(out, { recursive: true, force: true });
      }
    }
    delete process.env.BGRM_ORT_MEMORY;
    delete process.env.BGRM_MMAP_THRESHOLD;

    const serveRows: ServeRow[] = [];
    const rembg = path.join(testdata, 'rembg');
    const photos = existsSync(rembg) ? (await fs.readdir(rembg)).filter((f) => f.endsWith('.jpg')).sort().map((f) => path.join(rembg, f)) : [];
    if (process.argv.includes('--no-serve')) {
      // asked for
    } else if (photos.length === 0) {
      process.stderr.write(`  serve: not measured, no photos in ${rembg}\n`);
    } else {
      for (const [malloc, env] of [
        ['bgrm 1 MiB', {}],
        ['glibc', { BGRM_MMAP_THRESHOLD: '0' }],
      ] as const) {
        const r = await measureServe(photos, malloc, env);
        serveRows.push(r);
        process.stderr.write(`  serve (${malloc} mmap threshold): ${r.ok} of ${r.requests} answered, RSS after ${r.afterMiB.toFixed(0)} MiB, peak ${r.peakMiB.toFixed(0)} MiB\n`);
      }
    }
    if (json) {
      process.stdout.write(`${JSON.stringify({ frames: n, cores: os.availableParallelism(), rows, serve: serveRows }, null, 2)}\n`);
      return;
    }
    const lines = [
      `peak RSS and frames/s of bgrm process (default layout), ${n} frames of 854x480, ${os.availableParallelism()} cores, same run`,
      `model        plan             runs    frames  frames/s  peak MiB  ${'fps vs ' + plans[0]}  ${'RSS vs ' + plans[0]}`,
    ];
    for (const r of rows) {
      const base = rows.find((b) => b.model === r.model)!; // the model's first plan
      lines.push(
        `${r.model.padEnd(12)} ${r.plan.padEnd(16)} ${r.runs.padEnd(7)} ${String(r.frames).padStart(6)}  ${r.fps.toFixed(2).padStart(8)}  ${r.peakMiB.toFixed(0).padStart(8)}  ${('x' + (r.fps / base.fps).toFixed(2)).padStart(14)}  ${('x' + (r.peakMiB / base.peakMiB).toFixed(2)).padStart(14)}`,
      );
    }
    if (serveRows.length > 0) {
      const base = serveRows[0];
      lines.push(
        '',
        `bgrm serve (u2netp, default settings): ${photos.length} photos as PNG and WebP, then 200 requests from 20 clients, same run`,
        'mmap threshold  answered  RSS after MiB  peak MiB  seconds  RSS vs first',
        ...serveRows.map(
          (r) =>
            `${r.malloc.padEnd(15)} ${`${r.ok}/${r.requests}`.padStart(8)}  ${r.afterMiB.toFixed(0).padStart(13)}  ${r.peakMiB.toFixed(0).padStart(8)}  ${r.seconds.toFixed(1).padStart(7)}  ${('x' + (r.afterMiB / base.afterMiB).toFixed(2)).padStart(12)}`,
        ),
      );
    }
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`bench:memory failed: ${(err as Error).message}\n`);
  process.exit(1);
});
