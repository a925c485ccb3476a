import { defaultConcurrency, FAST_SETTINGS, nativeKeyframeInterval, parseKeyframeInterval } from '../../src/lib/render';

describe('defaultConcurrency', () => {
  it('keeps 4 frames in flight without keyframes and two intervals and two more with them, at most 16', () => {
    expect(defaultConcurrency()).toBe(4);
    expect(defaultConcurrency(1)).toBe(4);
    expect(defaultConcurrency(3)).toBe(8);
    // adaptive keyframes: at most 4 frames apart
    expect(defaultConcurrency(FAST_SETTINGS.keyframeInterval)).toBe(10);
    expect(defaultConcurrency(30)).toBe(16);
  });
});

describe('--keyframe-interval', () => {
  it('takes auto or a whole number of frames, and the native core gets 0 for auto', () => {
    expect(parseKeyframeInterval('auto')).toBe('auto');
    expect(parseKeyframeInterval('3')).toBe(3);
    for (const bad of ['0', '31', '2.5', 'every', '']) expect(() => parseKeyframeInterval(bad)).toThrow(/auto or a whole number/);
    expect(nativeKeyframeInterval('auto')).toBe(0);
    expect(nativeKeyframeInterval(undefined)).toBe(1);
    expect(nativeKeyframeInterval(4)).toBe(4);
  });
});
