// Model manifests, resolution and verified installation (with local files: there is no internet here).
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { findManifest, hashFile, knownModels, pullModel, resolveModel } from '../../src/lib/models';
import { root } from '../helpers/testdata';

describe('model manifests', () => {
  it('list the five known models with input sizes and a checksum', async () => {
    const names = (await knownModels()).map((m) => m.name);
    expect(names).toEqual(expect.arrayContaining(['u2netp', 'u2net', 'u2net_human_seg', 'silueta', 'isnet-general-use']));
    for (const m of await knownModels()) {
      expect(m.input.width).toBeGreaterThan(0);
      expect(m.sha256 ?? m.md5).toMatch(/^[0-9a-f]{32,64}$/);
      expect(m.sources.length).toBeGreaterThan(0);
    }
  });
});

describe('resolveModel', () => {
  it('explains an unknown name', async () => {
    await expect(resolveModel('nosuchmodel')).rejects.toMatchObject({ code: 'ERR_UNKNOWN_MODEL', message: expect.stringContaining('u2netp') });
  });
  it('explains a missing file path', async () => {
    await expect(resolveModel('/nowhere/model.onnx')).rejects.toMatchObject({ code: 'ERR_MODEL_NOT_FOUND' });
  });
  it('names the command that makes an int8 model that is not made yet, and the flag that makes it where there is one', async () => {
    const saved = process.env.BGRM_MODELS_DIR;
    process.env.BGRM_MODELS_DIR = await fs.mkdtemp(path.join(os.tmpdir(), 'bgrm-models-'));
    try {
      await expect(resolveModel('u2netp-int8')).rejects.toMatchObject({ code: 'ERR_MODEL_NOT_INSTALLED', message: expect.stringContaining('bgrm process --fast') });
      await expect(resolveModel('u2net-int8')).rejects.toMatchObject({ code: 'ERR_MODEL_NOT_INSTALLED', message: expect.stringContaining('bgrm process --best') });
      const silueta = resolveModel('silueta-int8');
      await expect(silueta).rejects.toMatchObject({ message: expect.stringContaining('bgrm models quantize silueta') });
      await expect(silueta).rejects.toMatchObject({ message: expect.not.stringContaining('bgrm process') });
    } finally {
      await fs.rm(process.env.BGRM_MODELS_DIR, { recursive: true, force: true });
      if (saved === undefined) delete process.env.BGRM_MODELS_DIR;
      else process.env.BGRM_MODELS_DIR = saved;
    }
  });
});

describe('pullModel', () => {
  let dir: string;
  const saved = process.env.BGRM_MODELS_DIR;
  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'bgrm-models-'));
    process.env.BGRM_MODELS_DIR = dir;
  });
  afterEach(async () => {
    if (saved === undefined) delete process.env.BGRM_MODELS_DIR;
    else process.env.BGRM_MODELS_DIR = saved;
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('refuses a local file whose checksum does not match, and installs nothing', async () => {
    const wrong = path.join(dir, 'wrong.onnx');
    await fs.writeFile(wrong, 'not a model');
    await expect(pullModel('u2netp', { from: wrong })).rejects.toMatchObject({ code: 'ERR_CHECKSUM' });
    await expect(fs.stat(path.join(dir, 'u2netp.onnx'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('installs a verified local file', async () => {
    const real = path.join(root, 'models', 'u2netp.onnx');
    const manifest = (await findManifest('u2netp'))!;
    expect(await hashFile(real, 'sha256')).toBe(manifest.sha256);
    const r = await pullModel('u2netp', { from: real });
    expect(r.bytes).toBe(manifest.bytes);
    expect((await resolveModel('u2netp')).path).toBe(path.join(dir, 'u2netp.onnx'));
  });

  it('says what failed and how to install by hand when no source can be reached', async () => {
    // silueta is only on its official release host, which this machine cannot reach.
    const err = await pullModel('silueta').catch((e: unknown) => e);
    if (!(err instanceof Error)) {
      // A machine with internet access fetched and verified it: that is a pass too.
      expect(await fs.stat(path.join(dir, 'silueta.onnx'))).toBeTruthy();
      return;
    }
    expect(err).toMatchObject({ code: 'ERR_DOWNLOAD' });
    expect(err.message).toContain('bgrm models pull silueta --from FILE');
    await expect(fs.readdir(dir)).resolves.toEqual([]);
  });
});
