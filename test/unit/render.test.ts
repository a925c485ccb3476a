import { defaultConcurrency, FAST_SETTINGS } from '../../src/lib/render';

describe('defaultConcurrency', () => {
  it('keeps 4 frames in flight without keyframes and two intervals and two more with them, at most 16', () => {
    expect(defaultConcurrency()).toBe(4);
    expect(defaultConcurrency(1)).toBe(4);
    expect(defaultConcurrency(FAST_SETTINGS.keyframeInterval)).toBe(8);
    expect(defaultConcurrency(30)).toBe(16);
  });
});
