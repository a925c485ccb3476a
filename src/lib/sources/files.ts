// FileSource: image files and folders (recursively), read one at a time as the pipeline pulls.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { BgrmError, errorCode, errorMessage } from '../errors';
import type { Frame, FrameSource } from '../frame';
import { native } from '../native';
import { IMAGE_EXTENSIONS } from '../paths';

interface Entry {
  file: string;
  name: string;
}

/** A file a folder walk did not take, and why (a code and a sentence). */
export interface IgnoredFile {
  file: string;
  code: string;
  reason: string;
}

export const MAX_INPUT_BYTES = 256 * 1024 * 1024;
const HEAD_BYTES = 64; // enough for every signature, and for a HEIF file's first brands
const READABLE = 'JPEG, PNG, WebP, TIFF, BMP, GIF, HEIF/HEIC, AVIF';

/** The image format a file's first bytes name, or null (unreadable files too). */
async function formatOfFile(file: string): Promise<string | null> {
  const fh = await fs.open(file, 'r').catch(() => undefined);
  if (!fh) return null;
  try {
    const head = Buffer.alloc(HEAD_BYTES);
    const { bytesRead } = await fh.read(head, 0, HEAD_BYTES, 0);
    return native().imageFormat(head.subarray(0, bytesRead));
  } finally {
    await fh.close();
  }
}

interface Walk {
  out: Entry[];
  ignored: IgnoredFile[];
  /** Real paths of the folders already walked: a link loop, or a folder reached twice, is taken once. */
  seen: Set<string>;
}

async function walk(dir: string, rel: string, w: Walk): Promise<void> {
  const real = await fs.realpath(dir);
  if (w.seen.has(real)) return;
  w.seen.add(real);
  const entries = await fs.readdir(dir, { withFileTypes: true });
  entries.sort((a, b) => a.name.localeCompare(b.name));
  for (const e of entries) {
    if (e.name.startsWith('.')) continue; // hidden files (.DS_Store, editors' swap files) are not inputs
    const full = path.join(dir, e.name);
    const relName = rel ? `${rel}/${e.name}` : e.name;
    let isDir = e.isDirectory();
    let isFile = e.isFile();
    if (e.isSymbolicLink()) {
      // links are followed, to files and to folders
      const st = await fs.stat(full).catch(() => undefined);
      if (!st) {
        w.ignored.push({ file: full, code: 'ERR_BROKEN_LINK', reason: 'a symbolic link to nothing: fix or remove the link' });
        continue;
      }
      isDir = st.isDirectory();
      isFile = st.isFile();
    }
    if (isDir) await walk(full, relName, w);
    else if (isFile) {
      // by content, not by extension; a file named as an image is taken anyway, so that a damaged
      // one is reported with its decode error
      const named = IMAGE_EXTENSIONS.has(path.extname(e.name).toLowerCase());
      if (named || (await formatOfFile(full))) {
        const ext = path.extname(relName);
        w.out.push({ file: full, name: ext ? relName.slice(0, relName.length - ext.length) : relName });
      } else {
        w.ignored.push({ file: full, code: 'ERR_UNSUPPORTED_FORMAT', reason: `not an image bgrm reads (${READABLE})` });
      }
    }
  }
}

/**
 * Lists inputs: files keep their base name, folders mirror their sub-folders (links followed).
 * A missing input is not fatal here: it becomes a failed frame, reported with the others. Files in
 * folders that are not images come back in `ignored`.
 */
export async function listImageInputs(inputs: string[]): Promise<{ entries: Entry[]; ignored: IgnoredFile[] }> {
  const w: Walk = { out: [], ignored: [], seen: new Set() };
  for (const input of inputs) {
    const st = await fs.stat(input).catch(() => undefined);
    if (st?.isDirectory()) {
      if (w.seen.has(await fs.realpath(input))) continue; // the same folder given twice, or inside one given before
      const before = w.out.length;
      await walk(input, '', w);
      if (w.out.length === before) {
        const why = w.ignored.length ? `; ${w.ignored.length} file(s) there are not images bgrm reads (${READABLE})` : '';
        throw new BgrmError('ERR_NO_INPUT', `folder ${input} holds no images${why}`);
      }
    } else {
      w.out.push({ file: input, name: path.basename(input, path.extname(input)) });
    }
  }
  return { entries: w.out, ignored: w.ignored };
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
        frame.owned = true;
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
