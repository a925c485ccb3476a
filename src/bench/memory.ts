// npm run bench:memory: peak RSS and end-to-end frames/s of `bgrm process` (default settings, a
// folder of 854x480 DAVIS JPEGs -> RGBA PNGs), with the memory plan of ONNX Runtime's defaults
// ('pattern': memory pattern planner, a doubling arena per session, the original graph) against
// bgrm's ('lean': no pattern, no buffer reuse plan, one arena extended by what is asked, the lean
// graph), in one run; 'lean-reuse' is the lean plan with the buffer reuse plan on (the default before).
//   --frames N (200)  --testdata DIR  --models a,b (default u2netp,u2netp-int8,u2net; u2net when
//   installed, about 5 minutes more)  --plans a,b (default pattern,lean-reuse,lean)  --json
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { leanModel } from '../lib/model-lean';
import { resolveModel } from '../lib/models';
import { projectRoot } from '../lib/native';
import { arg, benchModels, runProcess } from './common';

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
    const plans = arg('plans', 'pattern,lean-reuse,lean').split(',');
    const wanted = arg('models', 'u2netp,u2netp-int8,u2net').split(',');
    for (const model of ['u2netp', 'u2netp-int8', ...(u2net ? ['u2net'] : [])].filter((m) => wanted.includes(m))) {
      for (const plan of plans) {
        process.env.BGRM_ORT_MEMORY = plan;
        const out = path.join(tmp, `out-${model}-${plan}`);
        const s = await runProcess<Summary>([input, '-o', out, '-m', model, '-q']);
        rows.push({ model, plan, frames: s.succeeded, fps: s.framesPerSecond, peakMiB: s.peakRssBytes / 2 ** 20, runs: `${s.parallelRuns} x ${s.threads}` });
        process.stderr.write(`  ${model} ${plan}: ${s.framesPerSecond.toFixed(2)} frames/s, peak ${(s.peakRssBytes / 2 ** 20).toFixed(0)} MiB\n`);
        await fs.rm(out, { recursive: true, force: true });
      }
    }
    delete process.env.BGRM_ORT_MEMORY;
    if (json) {
      process.stdout.write(`${JSON.stringify({ frames: n, cores: os.availableParallelism(), rows }, null, 2)}\n`);
      return;
    }
    const lines = [
      `peak RSS and frames/s of bgrm process (default layout), ${n} frames of 854x480, ${os.availableParallelism()} cores, same run`,
      `model        plan           runs    frames  frames/s  peak MiB  ${'fps vs ' + plans[0]}  ${'RSS vs ' + plans[0]}`,
    ];
    for (const r of rows) {
      const base = rows.find((b) => b.model === r.model)!; // the model's first plan
      lines.push(
        `${r.model.padEnd(12)} ${r.plan.padEnd(14)} ${r.runs.padEnd(7)} ${String(r.frames).padStart(6)}  ${r.fps.toFixed(2).padStart(8)}  ${r.peakMiB.toFixed(0).padStart(8)}  ${('x' + (r.fps / base.fps).toFixed(2)).padStart(14)}  ${('x' + (r.peakMiB / base.peakMiB).toFixed(2)).padStart(14)}`,
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
