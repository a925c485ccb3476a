// Locating ../shared/testdata and the installed models; tests that need them skip with a message.
import { existsSync } from 'node:fs';
import * as path from 'node:path';

export const root = path.resolve(__dirname, '..', '..');
export const testdata = process.env.BGRM_TESTDATA ?? path.resolve(root, '..', 'shared', 'testdata');
export const cli = path.join(root, 'bin', 'run.js');

export function hasTestdata(sub: string): boolean {
  return existsSync(path.join(testdata, sub));
}

/** describe, or describe.skip with a warning naming what is missing. */
export function describeWith(what: string, present: boolean): jest.Describe {
  if (!present) {
    // eslint-disable-next-line no-console
    console.warn(`SKIPPED: ${what} is missing; these tests need it (see test/helpers/testdata.ts)`);
    return describe.skip;
  }
  return describe;
}

export function modelPath(name: string): string {
  return path.join(process.env.BGRM_MODELS_DIR ?? path.join(root, 'models'), `${name}.onnx`);
}
