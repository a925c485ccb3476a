// Output paths: names that come from inputs or messages never leave the output folder, and files
// are written whole or not at all.
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { BgrmError } from './errors';

/** Joins `name` (relative, '/'-separated) under `root`, refusing anything that escapes it. */
export function safeJoin(root: string, name: string): string {
  const cleaned = name.replace(/\\/g, '/').split('/').filter((p) => p !== '' && p !== '.');
  if (cleaned.length === 0 || cleaned.some((p) => p === '..' || p.includes('\0'))) {
    throw new BgrmError('ERR_UNSAFE_PATH', `refusing output name '${name}': it would leave the output folder`);
  }
  const full = path.resolve(root, ...cleaned);
  const rel = path.relative(path.resolve(root), full);
  if (rel.startsWith('..') || path.isAbsolute(rel)) {
    throw new BgrmError('ERR_UNSAFE_PATH', `refusing output name '${name}': it would leave the output folder`);
  }
  return full;
}

/** Extensions of the image files bgrm reads (files are recognised by content; these name them). */
export const IMAGE_EXTENSIONS = new Set(['.jpg', '.jpeg', '.jfif', '.png', '.webp', '.tif', '.tiff', '.bmp', '.dib', '.gif', '.heic', '.heif', '.avif']);
export const VIDEO_EXTENSIONS = new Set(['.mp4', '.mov', '.mkv', '.webm', '.avi', '.m4v', '.mpg', '.mpeg']);

export function isVideoPath(p: string): boolean {
  return VIDEO_EXTENSIONS.has(path.extname(p).toLowerCase());
}

/** Writes a file whole or not at all: a temporary file beside it, then a rename (a reader never sees half a file). */
export async function writeFileAtomic(file: string, data: Buffer): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    await fs.writeFile(tmp, data);
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
}
