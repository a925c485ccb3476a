// Helpers the benchmarks share: flags, running the CLI as a child process, a models folder of their
// own (so a user's int8 model is left alone) and percentiles.
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { resolveModel } from '../lib/models';
import { projectRoot } from '../lib/native';
import { installQuantized } from '../lib/quantize';

const cli = path.join(projectRoot, 'bin', 'run.js');

export function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

/** Runs `bgrm ARGS`; `onStderrLine` sees each line of its standard error as it comes. */
export function runCli(args: string[], onStderrLine?: (line: string) => void): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      const text = d.toString();
      stderr += text;
      if (onStderrLine) for (const line of text.split('\n')) onStderrLine(line);
    });
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** `bgrm process ARGS --json`, its summary parsed; rejects when it fails. */
export async function runProcess<T>(args: string[]): Promise<T> {
  const r = await runCli(['process', ...args, '--json']);
  if (r.code !== 0) throw new Error(`bgrm process ${args.join(' ')} failed (${r.code}): ${r.stderr.slice(-500)}`);
  return JSON.parse(r.stdout) as T;
}

/**
 * A models folder under `tmp` (BGRM_MODELS_DIR, for this process and the CLIs it starts) with the
 * float u2netp linked in and u2netp-int8 made from `calibration`, outside any timed run.
 */
export async function benchModels(tmp: string, calibration: string): Promise<{ float: string; int8: string; int8Note: string }> {
  const float = (await resolveModel('u2netp')).path;
  process.env.BGRM_MODELS_DIR = path.join(tmp, 'models');
  await fs.mkdir(process.env.BGRM_MODELS_DIR, { recursive: true });
  await fs.symlink(float, path.join(process.env.BGRM_MODELS_DIR, 'u2netp.onnx'));
  const q = await installQuantized('u2netp', { calibration });
  const note = `int8 ${q.upToDate ? 'already made' : `made in ${q.seconds.toFixed(1)} s`}, ${q.fusion?.qlinearConv ?? '?'} QLinearConv`;
  return { float, int8: q.path, int8Note: note };
}

/** The p-quantile (0-1) of ascending values; 0 for none. */
export function percentile(sorted: number[], p: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] : 0;
}
