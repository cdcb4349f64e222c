import { expect } from 'vitest';
import { ProviderError } from '../../src/providers/errors.js';

/** The `code` of what `f` throws (undefined when it returns): for tables of refusals. */
export function codeOf(f: () => unknown): string | undefined {
  try {
    f();
    return undefined;
  } catch (error) {
    return (error as { code?: string }).code;
  }
}

/** The ProviderError `p` rejects with; fails the test when it resolves or rejects with anything else. */
export async function failure(p: Promise<unknown>): Promise<ProviderError> {
  try {
    await p;
  } catch (error) {
    expect(error).toBeInstanceOf(ProviderError);
    return error as ProviderError;
  }
  throw new Error('expected a failure');
}
