// bgrm models list: known models, which are installed, and where.
import { Command, Flags } from '@oclif/core';
import { modelStatuses, modelsDir } from '../../lib/models';

export default class ModelsList extends Command {
  static description = 'List known models and show which are installed';
  static examples = ['<%= config.bin %> models list', '<%= config.bin %> models list --json'];
  static flags = { json: Flags.boolean({ description: 'machine-readable output', default: false }) };

  async run(): Promise<void> {
    const { flags } = await this.parse(ModelsList);
    const statuses = await modelStatuses();
    if (flags.json) {
      const rows = statuses.map((s) => ({
        name: s.manifest.name,
        installed: s.installed,
        path: s.path,
        bytes: s.bytes ?? null,
        input: `${s.manifest.input.width}x${s.manifest.input.height}`,
        description: s.manifest.description,
      }));
      this.log(JSON.stringify({ modelsDir: modelsDir(), models: rows }, null, 2));
      return;
    }
    this.log(`models folder: ${modelsDir()}`);
    for (const s of statuses) {
      const state = s.installed ? `installed (${((s.bytes ?? 0) / 1e6).toFixed(1)} MB)` : `not installed: bgrm models pull ${s.manifest.name}`;
      this.log(`  ${s.manifest.name.padEnd(18)} ${`${s.manifest.input.width}x${s.manifest.input.height}`.padEnd(10)} ${state}`);
      this.log(`  ${''.padEnd(18)} ${s.manifest.description}`);
    }
  }
}
