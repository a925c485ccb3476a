// --background: a colour (#rgb, #rrggbb, a few names) or an image file to composite onto.
import { promises as fs } from 'node:fs';
import { BgrmError } from './errors';
import { native, type ProcessOptions } from './native';

const NAMED: Record<string, [number, number, number]> = {
  black: [0, 0, 0],
  white: [255, 255, 255],
  red: [255, 0, 0],
  green: [0, 255, 0],
  blue: [0, 0, 255],
  grey: [128, 128, 128],
  gray: [128, 128, 128],
};

export function parseColor(value: string): [number, number, number] | undefined {
  const v = value.trim().toLowerCase();
  if (NAMED[v]) return NAMED[v];
  const m = /^#?([0-9a-f]{3}|[0-9a-f]{6})$/.exec(v);
  if (!m) return undefined;
  const hex = m[1].length === 3 ? m[1].split('').map((c) => c + c).join('') : m[1];
  return [0, 2, 4].map((i) => parseInt(hex.slice(i, i + 2), 16)) as [number, number, number];
}

/** Turns --background into process options: a colour, or an image decoded once and reused. */
export async function backgroundOptions(value: string | undefined): Promise<Pick<ProcessOptions, 'color' | 'background'>> {
  if (!value) return {};
  const color = parseColor(value);
  if (color) return { color };
  const bytes = await fs.readFile(value).catch(() => {
    throw new BgrmError('ERR_BACKGROUND', `--background '${value}' is neither a colour (#rrggbb, white, ...) nor a readable image file`);
  });
  return { background: await native().decode(bytes) };
}
