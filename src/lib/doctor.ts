// What this installation has: library versions, ONNX Runtime providers, models, ffmpeg.
import { execFile } from 'node:child_process';
import * as os from 'node:os';
import { promisify } from 'node:util';
import { modelStatuses } from './models';
import { native } from './native';

export interface DoctorReport {
  bgrm: string;
  node: string;
  platform: string;
  cpus: number;
  native: { loaded: boolean; error?: string; onnxruntime?: string; providers?: string[]; jpeg?: string; png?: string; images?: string };
  ffmpeg: { found: boolean; version?: string };
  models: { name: string; installed: boolean; path: string }[];
}

export async function doctor(version: string): Promise<DoctorReport> {
  const report: DoctorReport = {
    bgrm: version,
    node: process.version,
    platform: `${os.platform()}-${os.arch()}`,
    cpus: os.availableParallelism(),
    native: { loaded: false },
    ffmpeg: { found: false },
    models: [],
  };
  try {
    const n = native();
    const v = n.versions();
    report.native = { loaded: true, onnxruntime: v.onnxruntime, providers: n.providers(), jpeg: v.jpeg, png: v.png, images: v.images };
  } catch (err) {
    report.native.error = (err as Error).message;
  }
  try {
    const { stdout } = await promisify(execFile)('ffmpeg', ['-hide_banner', '-version'], { timeout: 10_000 });
    report.ffmpeg = { found: true, version: stdout.split('\n')[0] };
  } catch {
    report.ffmpeg = { found: false };
  }
  report.models = (await modelStatuses()).map((s) => ({ name: s.manifest.name, installed: s.installed, path: s.path }));
  return report;
}
