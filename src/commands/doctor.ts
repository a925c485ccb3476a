// bgrm doctor: show what this installation can do and what is missing.
import { Command, Flags } from '@oclif/core';
import { doctor } from '../lib/doctor';

export default class Doctor extends Command {
  static description = 'Show ONNX Runtime version and providers, codec libraries, models present and ffmpeg';
  static flags = { json: Flags.boolean({ description: 'machine-readable output', default: false }) };

  async run(): Promise<void> {
    const { flags } = await this.parse(Doctor);
    const r = await doctor(this.config.version);
    if (flags.json) {
      this.log(JSON.stringify(r, null, 2));
      return;
    }
    this.log(`bgrm ${r.bgrm} on ${r.platform}, Node ${r.node}, ${r.cpus} CPUs`);
    if (r.native.loaded) {
      this.log(`ONNX Runtime ${r.native.onnxruntime}; providers: ${r.native.providers!.join(', ')}`);
      this.log(`  (CUDA is listed when the build supports it; --device cuda also needs its provider libraries, CUDA and cuDNN)`);
      this.log(`JPEG: ${r.native.jpeg}; PNG: ${r.native.png}; WebP, TIFF, BMP, GIF, HEIF/AVIF, CMYK JPEG: ${r.native.images}`);
    } else {
      this.log(`native core: NOT LOADED: ${r.native.error}`);
    }
    this.log(`ffmpeg: ${r.ffmpeg.found ? r.ffmpeg.version : 'not found (needed for video input/output): sudo apt-get install ffmpeg'}`);
    this.log('models:');
    for (const m of r.models) this.log(`  ${m.name.padEnd(18)} ${m.installed ? 'installed' : 'not installed'}  ${m.path}`);
    if (!r.native.loaded) this.exit(1);
  }
}
