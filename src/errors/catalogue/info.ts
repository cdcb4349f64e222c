/**
 * The shape of one error catalogue entry, and the helper each area's table is written with.
 * The tables themselves are data (one file per group of areas); `../catalogue.ts` joins them.
 */

/** The part of Tandem that raises a code: one table per area in docs/reference/errors.md. */
export type ErrorArea =
  | 'tensor'
  | 'codec'
  | 'wire'
  | 'graph'
  | 'planner'
  | 'preprocess'
  | 'package'
  | 'runtime'
  | 'providers'
  | 'residency'
  | 'shaper'
  | 'prune'
  | 'edge'
  | 'cloud'
  | 'cli'
  | 'demo'
  | 'bench'
  | 'models';

/** The statuses Tandem's fronts answer with (499: the client left first, counted as nginx does). */
export type HttpStatus = 400 | 401 | 403 | 404 | 408 | 413 | 429 | 499 | 500 | 501 | 503 | 504;

/** An entry as an area's table writes it; the area is added by {@link inArea}. */
export interface ErrorEntry {
  /**
   * The status a front (the cloud service, the edge agent's HTTP front) answers when this code
   * ends a request there. A code that never reaches a front carries the status the same rules
   * give it: 400 for the caller's input, 503 for a retryable fault, 500 for the rest.
   */
  readonly status: HttpStatus;
  /** Other statuses some construction sites answer with (named in `meaning`). */
  readonly alsoStatus?: readonly HttpStatus[];
  /**
   * Whether the same request may succeed later. `'sometimes'`: each construction site decides
   * (the entry's meaning says when); a site that does not say gets `false`.
   */
  readonly retryable: boolean | 'sometimes';
  /** One line: what went wrong, for a reader who only has the code. */
  readonly meaning: string;
  /** Kept for compatibility but raised nowhere today. */
  readonly reserved?: true;
}

export interface ErrorInfo extends ErrorEntry {
  readonly area: ErrorArea;
}

/** An area's table with its area stamped on every entry, literal types kept for the derived code types. */
export function inArea<const A extends ErrorArea, const T extends Readonly<Record<string, ErrorEntry>>>(
  area: A,
  entries: T,
): { readonly [K in keyof T]: T[K] & { readonly area: A } } {
  const out: Record<string, ErrorInfo> = {};
  for (const [code, entry] of Object.entries(entries)) out[code] = { ...entry, area };
  return out as { readonly [K in keyof T]: T[K] & { readonly area: A } };
}
