import { defaultConcurrency, FAST_SETTINGS, nativeKeyframeInterval, parseKeyframeInterval, PRESETS, presetOf, temporalSettings } from '../../src/lib/render';

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

describe('--fast and --best', () => {
  it('name their float model; --fast uses adaptive keyframes, --best the model on every frame; a flag given beside them wins', () => {
    expect(presetOf({ fast: false, best: false })).toBeUndefined();
    expect(presetOf({ fast: true })).toBe('fast');
    expect(presetOf({ best: true })).toBe('best');
    expect(PRESETS.fast.model).toBe('u2netp');
    expect(PRESETS.best.model).toBe('u2net');
    expect(temporalSettings({})).toEqual({ keyframeInterval: 1, flow: 'patch', concurrency: 4 });
    expect(temporalSettings({ preset: 'fast' })).toEqual({ keyframeInterval: 'auto', flow: 'patch', concurrency: 10 });
    expect(temporalSettings({ preset: 'best' })).toEqual({ keyframeInterval: 1, flow: 'patch', concurrency: 4 });
    expect(temporalSettings({ preset: 'fast', keyframeInterval: '2', flow: 'medium', concurrency: 3 })).toEqual({ keyframeInterval: 2, flow: 'medium', concurrency: 3 });
  });
});
