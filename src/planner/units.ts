/**
 * Parsing of the human units used on the command line and in trace files:
 * bandwidths like `10mbit`, `500kbit/s`, `1gbit`, `2MB/s`, and durations like `40ms`, `1.5s`.
 */
import { ValidationError } from '../errors/index.js';

const BANDWIDTH = /^\s*(\d+(?:\.\d+)?)\s*([kmg]?)(bit|bps|b|byte|B)?(?:\/s)?\s*$/i;

/** Parses a bandwidth to bits per second. A bare number is bits per second. */
export function parseBandwidth(text: string): number {
  const m = BANDWIDTH.exec(text);
  if (!m) throw new ValidationError('PLANNER_BAD_UNIT', `not a bandwidth: "${text}" (try 10mbit, 500kbit, 2MB/s)`);
  const value = Number(m[1]);
  const prefix = (m[2] ?? '').toLowerCase();
  const unit = m[3] ?? 'bit';
  const scale = prefix === 'k' ? 1e3 : prefix === 'm' ? 1e6 : prefix === 'g' ? 1e9 : 1;
  // `B` and `byte` mean bytes; `b`, `bit` and `bps` mean bits.
  const bits = unit === 'B' || unit.toLowerCase() === 'byte' ? 8 : 1;
  const result = value * scale * bits;
  if (!(result > 0)) throw new ValidationError('PLANNER_BAD_UNIT', `bandwidth must be positive: "${text}"`);
  return result;
}

const DURATION = /^\s*(\d+(?:\.\d+)?)\s*(us|µs|ms|s|m)?\s*$/;

/** Parses a duration to milliseconds. A bare number is milliseconds. */
export function parseDuration(text: string): number {
  const m = DURATION.exec(text);
  if (!m) throw new ValidationError('PLANNER_BAD_UNIT', `not a duration: "${text}" (try 40ms, 1.5s)`);
  const value = Number(m[1]);
  switch (m[2]) {
    case 'us':
    case 'µs':
      return value / 1000;
    case 's':
      return value * 1000;
    case 'm':
      return value * 60_000;
    default:
      return value;
  }
}
