import * as path from 'node:path';
import { safeJoin } from '../../src/lib/paths';
import { parseColor } from '../../src/lib/background';

describe('safeJoin keeps names from inputs inside the output folder', () => {
  it('joins ordinary names and sub-folders', () => {
    expect(safeJoin('/out', 'a/b/c.png')).toBe(path.resolve('/out/a/b/c.png'));
  });
  it.each(['../x.png', 'a/../../x.png', '/etc/passwd', '..', '', 'a\\..\\..\\x'])('refuses %p', (name) => {
    if (name.startsWith('/')) {
      // an absolute name is treated as relative to the folder, never as an absolute path
      expect(safeJoin('/out', name)).toBe(path.resolve('/out/etc/passwd'));
    } else {
      expect(() => safeJoin('/out', name)).toThrow(expect.objectContaining({ code: 'ERR_UNSAFE_PATH' }));
    }
  });
});

describe('parseColor', () => {
  it('reads #rrggbb, #rgb and names', () => {
    expect(parseColor('#00ff00')).toEqual([0, 255, 0]);
    expect(parseColor('#fff')).toEqual([255, 255, 255]);
    expect(parseColor('black')).toEqual([0, 0, 0]);
    expect(parseColor('bg.jpg')).toBeUndefined();
  });
});
