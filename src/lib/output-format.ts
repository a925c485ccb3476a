// The image format of each output (PNG, WebP or JPEG): from --output-format, else from the -o file's
// extension, else PNG. In folders the file extension follows the format.
import * as path from 'node:path';
import { BgrmError } from './errors';

export type OutputFormat = 'png' | 'webp' | 'jpeg';
export const OUTPUT_FORMATS: readonly OutputFormat[] = ['png', 'webp', 'jpeg'];

const EXTENSION: Record<OutputFormat, string> = { png: '.png', webp: '.webp', jpeg: '.jpg' };
const BY_EXTENSION: Record<string, OutputFormat> = { '.png': 'png', '.webp': 'webp', '.jpg': 'jpeg', '.jpeg': 'jpeg' };

/** The file extension (with the dot) outputs of `format` get in a folder. */
export function extensionOf(format: OutputFormat): string {
  return EXTENSION[format];
}

/** The output format a path's extension names, if it names one. */
export function formatOfPath(file: string | undefined): OutputFormat | undefined {
  return file ? BY_EXTENSION[path.extname(file).toLowerCase()] : undefined;
}

export interface OutputChoice {
  outputFormat: OutputFormat;
  /** WebP: 0 lossless, 1-100 lossy; JPEG: 1-100 (0: 90); PNG: unused. */
  outputQuality: number;
}

/**
 * Chooses the format from the flags and -o, and refuses what cannot be written: JPEG has no alpha,
 * so a cut-out in JPEG needs a background; a quality applies to WebP and JPEG only.
 */
export function chooseOutputFormat(opts: { flag?: string; quality?: number; output?: string; format: 'rgba' | 'mask'; background?: string }): OutputChoice {
  const named = formatOfPath(opts.output);
  if (opts.flag !== undefined && !OUTPUT_FORMATS.includes(opts.flag as OutputFormat)) {
    throw new BgrmError('ERR_USAGE', `--output-format must be one of ${OUTPUT_FORMATS.join(', ')}, not '${opts.flag}'`);
  }
  const flag = opts.flag as OutputFormat | undefined;
  if (flag && named && flag !== named) {
    throw new BgrmError('ERR_USAGE', `-o ${opts.output} names a ${named.toUpperCase()} file but --output-format is ${flag}: give the file the ${extensionOf(flag)} extension or drop the flag`);
  }
  const outputFormat = flag ?? named ?? 'png';
  if (outputFormat === 'jpeg' && opts.format === 'rgba' && !opts.background) {
    throw new BgrmError(
      'ERR_USAGE',
      "JPEG has no alpha channel, so a cut-out cannot be transparent in it: add --background (a colour such as white or '#00ff00', or an image), use --format mask, or write PNG or WebP",
    );
  }
  if (opts.quality !== undefined && outputFormat === 'png') {
    throw new BgrmError('ERR_USAGE', '--output-quality applies to WebP (lossy) and JPEG; PNG is lossless (see --png-level for its size)');
  }
  return { outputFormat, outputQuality: opts.quality ?? 0 };
}
