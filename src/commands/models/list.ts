// bgrm models list: known models, which are installed, and where.
import { Command, Flags } from '@oclif/core';
import { promises as fs } from 'node:fs';
import { INT8_SUFFIX, int8ModelPath, modelStatuses, modelsDir } from '../../lib/models';
import { MIN_CALIBRATION_FRAMES, QUANTIZER_VERSION, readQuantizationRecord } from '../../lib/quantize';

export default class ModelsList extends Command {
  static description = 'List known models and show which are installed';
  static examples = ['<%= config.bin %> models list', '<%= config.bin %> models list --json'];
  static flags = { json: Flags.boolean({ description: 'machine-readable output', default: false }) };

  async run(): Promise<void> {
    const { flags } = await this.parse(ModelsList);
    const statuses = await modelStatuses();
    // int8 models made here (bgrm models quantize), listed with their float originals
    const int8 = await Promise.all(
      statuses.map(async (s) => {
        const file = int8ModelPath(s.manifest.name);
        const st = await fs.stat(file).catch(() => undefined);
        if (!st?.isFile()) return undefined;
        const record = await readQuantizationRecord(file);
        return { name: `${s.manifest.name}${INT8_SUFFIX}`, path: file, bytes: st.size, calibration: record?.calibration, quantizerVersion: record?.quantizerVersion };
      }),
    );
    if (flags.json) {
      const rows = statuses.map((s) => ({
        name: s.manifest.name,
        installed: s.installed,
        path: s.path,
        bytes: s.bytes ?? null,
        input: `${s.manifest.input.width}x${s.manifest.input.height}`,
        description: s.manifest.description,
      }));
      this.log(JSON.stringify({ modelsDir: modelsDir(), models: rows, quantized: int8.filter(Boolean) }, null, 2));
      return;
    }
    this.log(`models folder: ${modelsDir()}`);
    for (const s of statuses) {
      const state = s.installed ? `installed (${((s.bytes ?? 0) / 1e6).toFixed(1)} MB)` : `not installed: bgrm models pull ${s.manifest.name}`;
      this.log(`  ${s.manifest.name.padEnd(18)} ${`${s.manifest.input.width}x${s.manifest.input.height}`.padEnd(10)} ${state}`);
      this.log(`  ${''.padEnd(18)} ${s.manifest.description}`);
    }
    for (const q of int8) {
      if (!q) continue;
      this.log(`  ${q.name.padEnd(18)} ${'int8'.padEnd(10)} installed (${(q.bytes / 1e6).toFixed(1)} MB)`);
      this.log(`  ${''.padEnd(18)} made by bgrm models quantize` + (q.calibration ? `, calibrated on ${q.calibration.frames} frames of ${q.calibration.source}` : ''));
      const base = q.name.slice(0, -INT8_SUFFIX.length);
      if (q.quantizerVersion !== undefined && q.quantizerVersion < QUANTIZER_VERSION) {
        this.log(`  ${''.padEnd(18)} made by an earlier recipe (${q.quantizerVersion}; now ${QUANTIZER_VERSION}), still used; bgrm models quantize ${base} --calibration DIR|VIDEO --force makes it again`);
      }
      if (q.calibration && q.calibration.frames < MIN_CALIBRATION_FRAMES) {
        this.log(`  ${''.padEnd(18)} too few calibration frames: --fast does not use it; redo with bgrm models quantize ${base} --calibration DIR|VIDEO --force`);
      }
    }
  }
}
