// Quality measures for mattes, shared by the tests and the benchmark: alpha extraction, MAE, IoU.
import { native, type RawImage } from './native';

export async function alphaOf(png: Buffer): Promise<RawImage> {
  const rgba = await native().decode(png, { channels: 4 });
  const a = Buffer.allocUnsafe(rgba.width * rgba.height);
  for (let i = 0; i < a.length; i++) a[i] = rgba.data[i * 4 + 3];
  return { data: a, width: rgba.width, height: rgba.height, channels: 1 };
}

/** Grey values of a mask PNG (or any PNG: its first channel). */
export async function greyOf(png: Buffer): Promise<RawImage> {
  const rgb = await native().decode(png, { channels: 3 });
  const g = Buffer.allocUnsafe(rgb.width * rgb.height);
  for (let i = 0; i < g.length; i++) g[i] = rgb.data[i * 3];
  return { data: g, width: rgb.width, height: rgb.height, channels: 1 };
}

export function meanAbsError(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) throw new Error(`size mismatch ${a.length} vs ${b.length}`);
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i] - b[i]);
  return s / a.length / 255;
}

/** IoU of (alpha >= 128) against (mask >= 128). */
export function iou(alpha: Uint8Array, mask: Uint8Array): number {
  let inter = 0;
  let union = 0;
  for (let i = 0; i < alpha.length; i++) {
    const p = alpha[i] >= 128;
    const g = mask[i] >= 128;
    if (p && g) inter++;
    if (p || g) union++;
  }
  return union === 0 ? 1 : inter / union;
}
