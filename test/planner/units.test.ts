import { describe, expect, it } from 'vitest';
import { parseBandwidth, parseDuration } from '../../src/planner/units.js';

describe('units', () => {
  it('parses bandwidths and durations', () => {
    expect(parseBandwidth('10mbit')).toBe(10e6);
    expect(parseBandwidth('500kbit/s')).toBe(500e3);
    expect(parseBandwidth('2MB/s')).toBe(16e6);
    expect(parseBandwidth('1gbit')).toBe(1e9);
    expect(parseDuration('40ms')).toBe(40);
    expect(parseDuration('1.5s')).toBe(1500);
    expect(parseDuration('40')).toBe(40);
    expect(() => parseBandwidth('fast')).toThrow(/not a bandwidth/);
    expect(() => parseDuration('soon')).toThrow(/not a duration/);
  });
});
