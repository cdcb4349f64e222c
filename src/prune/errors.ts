/** Typed failures of structured channel pruning. */
import type { AreaErrorCode } from '../errors/catalogue.js';
import { TandemError } from '../errors/index.js';

type PruneErrorCode = AreaErrorCode<'prune'>;
type Options = { cause?: unknown; details?: Record<string, unknown> };

/** A pruning request that cannot be carried out: one of the catalogue's `PRUNE_*` codes. */
export class PruneError extends TandemError {
  declare readonly code: PruneErrorCode;
  constructor(code: PruneErrorCode, message: string, options: Options = {}) {
    super(code, message, options);
  }
}
