/**
 * Option parsers shared by the commands: commander calls them with the raw text and reports
 * what they throw as the command's failure (exit 2).
 */
import { ValidationError, type AreaErrorCode } from '../src/errors/index.js';

/** An integer option of at least `min` (0 or 1); `code` is the command's code for a bad value. */
export function intAtLeast(flag: string, min: 0 | 1, code: AreaErrorCode<'cli'> = 'CLI_ARGUMENT') {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new ValidationError(code, `${flag} must be ${min > 0 ? 'a positive' : 'a non-negative'} integer, got "${value}"`);
    return n;
  };
}

/** A finite number of at least `min` (an empty value is none); `code` is the command's code for a bad value. */
export function numberAtLeast(flag: string, min: number, code: AreaErrorCode<'cli'> = 'CLI_ARGUMENT') {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || n < min) throw new ValidationError(code, `${flag} must be a number ≥ ${min}, got "${value}"`);
    return n;
  };
}
