/**
 * The edge runtime: `createRuntime` over a model package, the profiler that measures a model
 * for the planner, and the link probe the planner learns bandwidth from.
 */
export { createRuntime, type InferCallOptions, type InferResult, type InputValue, type Runtime, type RuntimeInput, type RuntimeOptions, type RuntimeTiming } from './runtime.js';
export type { Fallback, FallbackReason } from './executor.js';
export type { RequestSends, SendCheck, SendGate } from './send-form.js';
export { AbortedError, ClosedError, DeadlineExceededError, EdgeExecutionError, PlanError, QueueFullError } from './errors.js';
export { profileModel, type ProfileOptions } from './profiler.js';
export { measureEncodings, outputError, type EncodingMeasurement } from './encoding-profile.js';
export { LINK_PROBE_LARGE_BYTES, LINK_PROBE_SMALL_BYTES, probeRound } from './link-probe.js';
export { RECENT_WINDOW } from './slowdown.js';
// What the cloud service shares with the edge: the worker pool (already loaded by `createRuntime`'s
// module, so exporting it here costs no import), its wire protocol, the caller race and session threading.
export { EdgePool, type EdgePoolOptions, type EdgeRunOptions, type EdgeRunResult } from './pool.js';
export { isTransferable, type ModelRef, type ValueInfo } from './protocol.js';
export { raceCaller } from './race.js';
export { spinningOf, spinningSessionOptions } from './session-options.js';
