/**
 * Tandem's public embedding API. Create a runtime from a model package, call `infer` per
 * request, `close` when done:
 *
 * ```ts
 * import { createRuntime } from 'tandem';
 * const runtime = await createRuntime({ model: 'models/ppocr-cls', planner: { kind: 'local' } });
 * const { outputs, plan, timing } = await runtime.infer(jpegBytes, { deadline: Date.now() + 200 });
 * await runtime.close();
 * ```
 *
 * Everything not exported here is internal and may change.
 */
export { createRuntime } from './runtime/runtime.js';
export type { InferCallOptions, InferResult, InputValue, Runtime, RuntimeInput, RuntimeOptions, RuntimeTiming } from './runtime/runtime.js';
export type { Fallback, FallbackReason } from './runtime/executor.js';
export { AbortedError, ClosedError, DeadlineExceededError, EdgeExecutionError, ModelPackageError, PlanError, QueueFullError } from './runtime/errors.js';
export { ImageError, PipelineSpecError } from './preprocess/errors.js';
export type { ImageInput, RawImage } from './preprocess/image.js';
export type { ClassScore } from './preprocess/postprocess.js';
export type { PipelineSpecInput, PostprocessSpec } from './preprocess/schema.js';
export { TandemError, ValidationError, isTandemError } from './errors/index.js';
// The error catalogue: every code with its HTTP status, whether it is retryable and what it means.
export { ERROR_CATALOGUE, errorInfo, httpStatusOf, isErrorCode, type AreaErrorCode, type ErrorArea, type ErrorCode, type ErrorInfo, type HttpStatus } from './errors/index.js';
export type { DType, Tensor, TensorMap } from './tensor/index.js';
// Tensor helpers, for apps that build tensors or read them off a wire of their own.
export { DTYPES, allocate, assertTensor, bytesOf, isDType, viewAs } from './tensor/index.js';
export type { Plan, PlanChooser, PlanContext, Observation } from './planner/plan.js';
export type { Profile } from './planner/profile.js';
export type { EndpointConfig, InferRequest, InferResponse, InferOptions, ProviderClient } from './providers/types.js';

// Cloud endpoints: one client per provider kind behind `ProviderClient`.
export { createProviderClient, ProviderError } from './providers/index.js';
export type { ProviderKind, InferTiming, ProviderErrorCode, ProviderOverrides } from './providers/index.js';

// The adaptive planner: pass it as `planner` to `createRuntime`.
export { AdaptivePlanner } from './planner/adaptive.js';
export type { AdaptivePlannerOptions, Objective, PlannerSnapshot } from './planner/adaptive.js';
export { ProfileSchema } from './planner/profile.js';

// Residency: policy, gate, audit log, result stores and the durable outbox.
export {
  AuditLog, verifyAuditFile, LocalKeyFile, ResidencyGate, Outbox, loadPolicy, parsePolicy, createStore, createStores, resultKey,
  AuditTamperError, EnvelopeError, OutboxDiskError, OutboxFullError, PolicyError, ResidencyDeniedError, StoreError, UnknownDataClassError,
} from './residency/index.js';
export type { KeySource, OutboxOptions, Receipt, ResultSubmission, Policy, ResultStore } from './residency/index.js';

// The graph toolkit and the wire format, for tools built on Tandem.
export { loadModel, parseModel, analyzeModel, listCuts, splitModel, writePartition, GraphError } from './graph/index.js';
export type { ModelAnalysis, CutInfo, TensorSpec, Partition, PartitionManifest } from './graph/index.js';
export { encodeTensorMap, decodeTensorMap, CodecError } from './codec/index.js';
