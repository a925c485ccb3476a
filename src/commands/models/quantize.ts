// bgrm models quantize: make NAME-int8, a static int8 (QDQ) copy of an installed model.
import { Args, Command, Flags } from '@oclif/core';
import { errorCode, errorMessage } from '../../lib/errors';
import { DEFAULT_CALIBRATION_FRAMES, MIN_CALIBRATION_FRAMES, installQuantized } from '../../lib/quantize';

export default class ModelsQuantize extends Command {
  static description =
    'Quantise an installed model to int8 (QDQ, fused to QLinearConv by ONNX Runtime), calibrated on your frames; writes NAME-int8 beside it';
  static examples = [
    '<%= config.bin %> models quantize u2netp --calibration clip.mp4',
    '<%= config.bin %> models quantize u2netp --calibration photos/ --json',
  ];
  static args = { name: Args.string({ description: 'installed model (see bgrm models list)', required: true }) };
  static flags = {
    calibration: Flags.string({
      description: 'frames to calibrate on: a folder of images (evenly spaced) or a video (its first frames, every 3rd; denser for a short clip); at least --min-frames',
      required: true,
    }),
    frames: Flags.integer({ description: 'calibration frames to use', default: DEFAULT_CALIBRATION_FRAMES, min: 1, max: 1000 }),
    'min-frames': Flags.integer({
      description: `refuse a calibration source that gives fewer frames (an int8 model fitted to a few pictures misjudges others)`,
      default: MIN_CALIBRATION_FRAMES,
      min: 1,
      max: 1000,
    }),
    force: Flags.boolean({ description: 'quantise again even if the same calibration made the installed file (to redo a calibration)', default: false }),
    json: Flags.boolean({ description: 'machine-readable output', default: false }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(ModelsQuantize);
    try {
      const r = await installQuantized(args.name, {
        calibration: flags.calibration,
        frames: flags.frames,
        minFrames: flags['min-frames'],
        force: flags.force,
        log: flags.json ? undefined : (m) => this.logToStderr(m),
      });
      if (flags.json) {
        this.log(JSON.stringify(r, null, 2));
        return;
      }
      const rep = r.report;
      if (r.upToDate) this.log(`${r.name} is up to date (same model and calibration frames): ${r.path}`);
      else this.log(`wrote ${r.name}: ${r.path} (${(rep.bytes / 1e6).toFixed(2)} MB, float was ${(rep.sourceBytes / 1e6).toFixed(2)} MB) in ${r.seconds.toFixed(1)} s`);
      this.log(`  calibration: ${rep.calibration.frames} frames from ${rep.calibration.source} (sha256 ${rep.calibration.hash.slice(0, 12)})`);
      this.log(`  convs: ${rep.int8Convs} of ${rep.convs} int8; ${rep.outlierTensors.length} outlier tensors kept float (${rep.outlierTensors.map((o) => `${o.tensor}[${o.channels.join(',')}]`).join(' ')})`);
      if (r.fusion) this.log(`  ONNX Runtime runs it as ${r.fusion.qlinearConv} QLinearConv + ${r.fusion.floatConv} float Conv`);
      this.log(`  use it with: bgrm process --model ${r.name} ...`);
    } catch (err) {
      this.error(`${errorMessage(err)} [${errorCode(err)}]`, { exit: 1 });
    }
  }
}
