// bgrm models pull: fetch a known model and verify its checksum before installing it.
import { Args, Command, Flags } from '@oclif/core';
import { errorCode, errorMessage } from '../../lib/errors';
import { leanModel } from '../../lib/model-lean';
import { pullModel } from '../../lib/models';

export default class ModelsPull extends Command {
  static description = 'Fetch a known model, verify its checksum, and install it into the models folder';
  static examples = ['<%= config.bin %> models pull u2net', '<%= config.bin %> models pull u2net --from ~/Downloads/u2net.onnx'];
  static args = { name: Args.string({ description: 'model name (see bgrm models list)', required: true }) };
  static flags = {
    from: Flags.string({ description: 'install from a local file instead of downloading (still verified)' }),
    force: Flags.boolean({ description: 'fetch again even if installed', default: false }),
    json: Flags.boolean({ description: 'machine-readable output', default: false }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(ModelsPull);
    try {
      const log = flags.json ? undefined : (m: string) => this.logToStderr(m);
      const r = await pullModel(args.name, { from: flags.from, force: flags.force, log });
      // Its lean graph now, so that no worker pays for making it (see model-lean.ts).
      await leanModel(r.path, log);
      if (flags.json) this.log(JSON.stringify(r, null, 2));
      else this.log(r.alreadyPresent ? `${r.name} is installed and verified: ${r.path}` : `installed ${r.name} (${r.bytes} bytes, verified) from ${r.source} -> ${r.path}`);
    } catch (err) {
      this.error(`${errorMessage(err)} [${errorCode(err)}]`, { exit: 1 });
    }
  }
}
