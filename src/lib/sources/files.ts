// FileSource: image files and folders (recursively), read one at a time as the pipeline pulls.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { BgrmError, errorCode, errorMessage } from '../errors';
import type { Frame, FrameSource } from '../frame';
import { IMAGE_EXTENSIONS } from '../paths';

interface Entry {
  file: string;
  name: string;
}

export const MAX_INPUT_BYTES = 256 * 1024 * 1024;

async function walk(dir: string, rel: string, out: Entry[]): Promise<void> {
  const entries = await fs.readdir(dir, { withFileTypes: true });
  entries.sort((a, b) => a.name.localeCompare(b.name));
  for (const e of entries) {
    const full = path.join(dir, e.name);
    const relName = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) await walk(full, relName, out);
    else if (e.isFile() && IMAGE_EXTENSIONS.has(path.extname(e.name).toLowerCase())) {
      out.push({ file: full, name: relName.slice(0, relName.length - path.extname(relName).length) });
    }
  }
}

/**
 * Lists inputs: files keep their base name, folders mirror their sub-folders.
 * A missing input is not fatal here: it becomes a failed frame, reported with the others.
 */
export async function listImageInputs(inputs: string[]): Promise<Entry[]> {
  const out: Entry[] = [];
  for (const input of inputs) {
    const st = await fs.stat(input).catch(() => undefined);
    if (st?.isDirectory()) {
      const before = out.length;
      await walk(input, '', out);
      if (out.length === before) {
        throw new BgrmError('ERR_NO_INPUT', `folder ${input} holds no .jpg, .jpeg or .png files`);
      }
    } else {
      out.push({ file: input, name: path.basename(input, path.extname(input)) });
    }
  }
  return out;
}

export class FileSource implements FrameSource {
  readonly total: number;
  constructor(private readonly entries: Entry[]) {
    this.total = entries.length;
  }

  async *frames(): AsyncIterable<Frame> {
    let frameNumber = 0;
    for (const { file, name } of this.entries) {
      const frame: Frame = { bytes: Buffer.alloc(0), cameraId: 'files', frameNumber: frameNumber++, timestampMs: Date.now(), origin: file, name };
      try {
        const st = await fs.stat(file);
        if (!st.isFile()) throw new BgrmError('ERR_NOT_A_FILE', `${file} is not a file`);
        if (st.size > MAX_INPUT_BYTES) {
          throw new BgrmError('ERR_INPUT_TOO_LARGE', `${file} is ${st.size} bytes, over the ${MAX_INPUT_BYTES}-byte input limit`);
        }
        frame.bytes = await fs.readFile(file);
      } catch (err) {
        const code = errorCode(err);
        frame.error =
          code === 'ENOENT'
            ? { code: 'ERR_FILE_NOT_FOUND', message: `${file}: no such file; check the path` }
            : { code, message: errorMessage(err) };
      }
      yield frame;
    }
  }
}
