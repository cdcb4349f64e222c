/**
 * The error catalogue: every code a {@link TandemError} may carry, once, with its area, HTTP
 * status, whether it is retryable and what it means. `ErrorCode` is derived from it, so a code
 * that is not listed here fails the type check; docs/reference/errors.md is generated from it
 * (`npm run docs:errors`) and a test fails when the two disagree.
 */
import { BENCH_CODES, CLI_CODES, CLOUD_CODES, DEMO_CODES, EDGE_CODES, MODELS_CODES } from './catalogue/apps.js';
import type { ErrorArea, ErrorInfo, HttpStatus } from './catalogue/info.js';
import { CODEC_CODES, GRAPH_CODES, PLANNER_CODES, PREPROCESS_CODES, SHAPER_CODES, TENSOR_CODES, WIRE_CODES } from './catalogue/library.js';
import { PRUNE_CODES } from './catalogue/prune.js';
import { RESIDENCY_CODES } from './catalogue/residency.js';
import { PACKAGE_CODES, PROVIDER_CODES, RUNTIME_CODES } from './catalogue/runtime.js';

export type { ErrorArea, ErrorEntry, ErrorInfo, HttpStatus } from './catalogue/info.js';

/** Each area's table, in the order the reference lists them. */
export const ERROR_AREAS = {
  tensor: TENSOR_CODES,
  codec: CODEC_CODES,
  wire: WIRE_CODES,
  graph: GRAPH_CODES,
  planner: PLANNER_CODES,
  preprocess: PREPROCESS_CODES,
  package: PACKAGE_CODES,
  runtime: RUNTIME_CODES,
  providers: PROVIDER_CODES,
  residency: RESIDENCY_CODES,
  shaper: SHAPER_CODES,
  prune: PRUNE_CODES,
  edge: EDGE_CODES,
  cloud: CLOUD_CODES,
  cli: CLI_CODES,
  demo: DEMO_CODES,
  bench: BENCH_CODES,
  models: MODELS_CODES,
} as const satisfies Record<ErrorArea, Readonly<Record<string, ErrorInfo>>>;

export const ERROR_CATALOGUE = {
  ...TENSOR_CODES,
  ...CODEC_CODES,
  ...WIRE_CODES,
  ...GRAPH_CODES,
  ...PLANNER_CODES,
  ...PREPROCESS_CODES,
  ...PACKAGE_CODES,
  ...RUNTIME_CODES,
  ...PROVIDER_CODES,
  ...RESIDENCY_CODES,
  ...SHAPER_CODES,
  ...PRUNE_CODES,
  ...EDGE_CODES,
  ...CLOUD_CODES,
  ...CLI_CODES,
  ...DEMO_CODES,
  ...BENCH_CODES,
  ...MODELS_CODES,
} as const satisfies Readonly<Record<string, ErrorInfo>>;

type Catalogue = typeof ERROR_CATALOGUE;

/** Every code Tandem raises. */
export type ErrorCode = keyof Catalogue;

/** The codes of one area, e.g. `AreaErrorCode<'providers'>`: what an area's error class narrows `code` to. */
export type AreaErrorCode<A extends ErrorArea> = { [C in ErrorCode]: Catalogue[C]['area'] extends A ? C : never }[ErrorCode];

/**
 * What a code that is not in the catalogue is taken as: one can arrive only past the type
 * check (a peer's answer, a worker's message), and is then an internal failure.
 */
const UNLISTED: ErrorInfo = { area: 'runtime', status: 500, retryable: false, meaning: 'A code that is not in the catalogue.' };

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CATALOGUE, value);
}

/** A code's catalogue entry. */
export function errorInfo(code: ErrorCode): ErrorInfo {
  return isErrorCode(code) ? ERROR_CATALOGUE[code] : UNLISTED;
}

/** The HTTP status a front answers a code with (see {@link ErrorInfo.status}). */
export function httpStatusOf(code: ErrorCode): HttpStatus {
  return errorInfo(code).status;
}

/** Whether a code is retryable when its construction site does not say (`'sometimes'` is then false). */
export function retryableByDefault(code: ErrorCode): boolean {
  return errorInfo(code).retryable === true;
}
