/**
 * Residency: the policy, the gate, the audit log, result stores and the outbox. The runtime wires
 * them as: `gate.allowedEndpoints(dataClass)` filters the planner's endpoints before a send;
 * `outbox.accept(result)` (which calls `gate.checkWrite`) persists a result before it is
 * acknowledged; the outbox delivers it to the store the policy allows.
 */
export { AuditLog, verifyAuditFile, verifyAuditText, type AuditEvent, type AuditKind, type AuditRecord } from './audit.js';
export { LocalKeyFile, seal, sealedMeta, unseal, type KeySource, type WrappedKey } from './envelope.js';
export {
  AuditTamperError,
  EnvelopeError,
  OutboxDiskError,
  OutboxFullError,
  PolicyError,
  ResidencyDeniedError,
  StoreError,
  UnknownDataClassError,
  isResidencyRefusal,
  type PolicyIssue,
  type StoreFailure,
} from './errors.js';
export { ResidencyGate, allowedSends, allowedStores, evaluateFormSend, evaluateSend, evaluateWrite, filterEndpoints, sendRuleFor, type Decision, type EndpointCandidate, type GateContext } from './gate.js';
export { RAW_RULE, cutDepthOf, describeForm, describeRule, describeThreshold, formAllowed, type FeatureThreshold, type SendForm, type SendRule, type SendRules } from './derived.js';
export { Outbox, type BackoffOptions, type OutboxEvent, type OutboxOptions, type Receipt, type ResultSubmission } from './outbox.js';
export { loadPolicy, parsePolicy, validatePolicy, type Allowance, type DataClassRule, type FeatureAllowance, type EndpointDecl, type OriginRule, type Policy, type PolicyInput, type StoreDecl } from './policy.js';
export { ossCredentialsFromEnv, type OssCredentials } from './stores/oss.js';
export { createStore, createStores, resultKey, type ObjectInfo, type PutMeta, type ResultStore, type StoredObject, type StoreFactoryOptions } from './stores/index.js';
