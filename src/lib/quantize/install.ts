// Installed int8 models (NAME-int8.onnx beside NAME.onnx, with a record NAME-int8.onnx.json), and
// the model --fast and --best run: made once from the user's own footage, never from a handful of frames.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { BgrmError, errorMessage } from '../errors';
import { hashFile, INT8_SUFFIX, int8ModelPath, resolveModel } from '../models';
import { writeFileAtomic } from '../paths';
import { loadCalibration } from './calibration';
import { inspectFusion, type FusionReport } from './fusion';
import { DEFAULT_CALIBRATION_FRAMES, FREE_INPUT_SIZE_VERSION, MIN_CALIBRATION_FRAMES, QUANTIZER_VERSION } from './plan';
import { quantizeModel, type QuantizeReport } from './rewrite';

export interface QuantizationRecord {
  name: string;
  from: string;
  fromSha256: string;
  calibration: { source: string; frames: number; hash: string };
  quantizerVersion: number;
  report: QuantizeReport;
  fusion?: FusionReport;
}

export async function readQuantizationRecord(modelFile: string): Promise<QuantizationRecord | undefined> {
  try {
    return JSON.parse(await fs.readFile(`${modelFile}.json`, 'utf8')) as QuantizationRecord;
  } catch {
    return undefined;
  }
}

export interface InstallQuantizedOptions {
  /** A folder of images, an image, or a video. */
  calibration: string;
  frames?: number;
  /** Refuse (ERR_CALIBRATION_TOO_SMALL) when the source gives fewer frames (default MIN_CALIBRATION_FRAMES). */
  minFrames?: number;
  force?: boolean;
  log?: (m: string) => void;
}

export interface InstallQuantizedResult extends QuantizationRecord {
  path: string;
  /** True when a model made from the same float model and the same calibration frames was already there. */
  upToDate: boolean;
  seconds: number;
}

/** Quantises the installed float model `name` into `name-int8` (see resolveModel). */
export async function installQuantized(name: string, opts: InstallQuantizedOptions): Promise<InstallQuantizedResult> {
  const started = process.hrtime.bigint();
  if (name.endsWith(INT8_SUFFIX)) name = name.slice(0, -INT8_SUFFIX.length);
  const base = await resolveModel(name);
  const target = int8ModelPath(base.name);
  opts.log?.(`calibration: reading up to ${opts.frames ?? DEFAULT_CALIBRATION_FRAMES} frames from ${opts.calibration}`);
  const calib = await loadCalibration(opts.calibration, base.input, opts.frames ?? DEFAULT_CALIBRATION_FRAMES);
  const minFrames = Math.min(opts.minFrames ?? MIN_CALIBRATION_FRAMES, opts.frames ?? Infinity);
  if (calib.tensors.length < minFrames) {
    throw new BgrmError(
      'ERR_CALIBRATION_TOO_SMALL',
      `${opts.calibration} gives ${calib.tensors.length} calibration frame${calib.tensors.length === 1 ? '' : 's'}; an int8 model needs at least ${minFrames} ` +
        `to fit its ranges to more than a few pictures. Calibrate on a folder of ${MIN_CALIBRATION_FRAMES}+ images or a video of ${MIN_CALIBRATION_FRAMES * 3}+ frames, ` +
        `or accept fewer with --min-frames ${calib.tensors.length} (not recommended)`,
    );
  }
  const fromSha256 = await hashFile(base.path, 'sha256');
  const seconds = () => Number(process.hrtime.bigint() - started) / 1e9;
  const previous = await readQuantizationRecord(target);
  const exists = await fs.stat(target).then((s) => s.isFile(), () => false);
  if (!opts.force && exists && previous && previous.fromSha256 === fromSha256 && previous.calibration.hash === calib.hash && previous.quantizerVersion === QUANTIZER_VERSION) {
    return { ...previous, path: target, upToDate: true, seconds: seconds() };
  }
  if (calib.tensors.length < MIN_CALIBRATION_FRAMES) opts.log?.(`warning: ${calib.tensors.length} calibration frames, fewer than the ${MIN_CALIBRATION_FRAMES} --fast expects (asked for)`);
  opts.log?.(`quantising ${base.name} on ${calib.tensors.length} frames`);
  const report = await quantizeModel(base.path, target, calib, base.input, opts.log);
  report.calibration.source = path.resolve(opts.calibration);
  const fusion = await inspectFusion(target);
  const record: QuantizationRecord = {
    name: `${base.name}${INT8_SUFFIX}`,
    from: base.path,
    fromSha256,
    calibration: report.calibration,
    quantizerVersion: QUANTIZER_VERSION,
    report,
    fusion,
  };
  await writeFileAtomic(`${target}.json`, Buffer.from(`${JSON.stringify(record, null, 2)}\n`));
  return { ...record, path: target, upToDate: false, seconds: seconds() };
}

/** Why an installed int8 model is not used by --fast or --best (calibrated on too few frames), or undefined. */
function weakCalibration(record: QuantizationRecord | undefined): string | undefined {
  const frames = record?.calibration.frames;
  return frames !== undefined && frames < MIN_CALIBRATION_FRAMES ? `it was calibrated on ${frames} frame${frames === 1 ? '' : 's'} (fewer than ${MIN_CALIBRATION_FRAMES})` : undefined;
}

/**
 * The model --fast or --best runs: the int8 copy of `base` (NAME-int8) when it is installed and was
 * calibrated on enough frames. When it is missing (or weak) and the input is a local video or folder
 * with enough frames, it is made once, calibrated on that input, and kept for every later run.
 * Otherwise (one photo, a short clip, standard input, Kafka) the float model runs this time, and the
 * message says how to make it. The float model must be installed (u2net for --best: models pull).
 */
export async function presetModel(flag: '--fast' | '--best', base: string, inputs: string[], log: (m: string) => void): Promise<string> {
  const name = base.endsWith(INT8_SUFFIX) ? base : `${base}${INT8_SUFFIX}`;
  const floatName = name.slice(0, -INT8_SUFFIX.length);
  await resolveModel(floatName); // not installed: says how to fetch it
  const howTo = `make it once with: bgrm models quantize ${floatName} --calibration DIR|VIDEO (${MIN_CALIBRATION_FRAMES}+ frames of footage like yours)`;
  let weak: string | undefined;
  try {
    const installed = await resolveModel(name);
    const record = await readQuantizationRecord(installed.path);
    weak = weakCalibration(record);
    if (!weak) {
      const made = record?.quantizerVersion;
      if (flag === '--fast' && made !== undefined && made < FREE_INPUT_SIZE_VERSION) {
        log(`${flag}: ${name} was made by quantiser recipe ${made}, which runs on whole frames only; recipe ${QUANTIZER_VERSION} also runs on the region around the subject (faster). Make it again with: bgrm models quantize ${floatName} --calibration DIR|VIDEO --force`);
      }
      return name;
    }
  } catch (err) {
    if ((err as { code?: string }).code !== 'ERR_MODEL_NOT_INSTALLED') throw err;
  }
  const local = inputs.length > 0 && inputs[0] !== '-' ? inputs[0] : undefined;
  if (!local) {
    log(`${flag}: ${name} ${weak ? `is not used: ${weak}` : 'is not made yet'}, so the float model runs; ${howTo}`);
    return floatName;
  }
  log(`${flag}: ${weak ? `remaking ${name} (${weak})` : `making ${name} once`}, calibrated on ${local} (later runs reuse it)`);
  try {
    const r = await installQuantized(floatName, { calibration: local, force: !!weak });
    log(`${flag}: ${name} ready in ${r.seconds.toFixed(1)} s: ${r.report.int8Convs} of ${r.report.convs} convs int8, ${r.calibration.frames} calibration frames -> ${r.path}`);
    return name;
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_CALIBRATION_TOO_SMALL') {
      log(`${flag}: ${local} is too little to calibrate ${name} on (${errorMessage(err).split(';')[0]}), so the float model runs this time; ${howTo}`);
    } else {
      log(`${flag}: could not make ${name} (${errorMessage(err)}); the float model runs`);
    }
    return floatName;
  }
}
