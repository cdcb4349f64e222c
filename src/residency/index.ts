/**
 * Residency: the policy, the gate, the audit log, result stores and the outbox. The runtime wires
 * them as: `gate.allowedEndpoints(dataClass)` filters the planner's endpoints before a send;
 * `outbox.accept(result)` (which calls `gate.checkWrite`) persists a result before it is
 * acknowledged, sealed under the key of the store's region (kms/); the outbox delivers it to the
 * store the policy allows.
 */
export { DurableAppendFile, type AppendIo } from './append-file.js';
export { syncDir } from './sync-dir.js';
export { AuditLog, auditReport, verifyAuditFile, verifyAuditText, type AuditEvent, type AuditKind, type AuditOpenOptions, type AuditRecord } from './audit.js';
export type { AuditCheckpoint, AuditFinding, AuditReport, TamperKind } from './audit-keyed.js';
export { LocalKeyFile, seal, sealedMeta, unseal, type DataKeyDecrypter, type KeySource, type WrappedKey } from './envelope.js';
export { AlibabaKmsSource, AwsKmsSource, CachingKeySource, GcpKmsSource, KeyRing, KmsError, keyRegionConflict, sealingKeyFor, type DataKeyCacheOptions, type KeyRingOptions, type KmsFailure } from './kms/index.js';
export { RegionLabelError, assertRegionLabel, regionLabelConflict, regionOfUrl, type HostRegion } from './region-label.js';
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
export { loadPolicy, parsePolicy, validatePolicy, type Allowance, type DataClassRule, type FeatureAllowance, type EndpointDecl, type KeyDecl, type OriginRule, type Policy, type PolicyInput, type StoreDecl } from './policy.js';
export { ossCredentialsFromEnv, type OssCredentials } from './stores/oss.js';
export { createStore, createStores, resultKey, type ObjectInfo, type PutMeta, type ResultStore, type StoredObject, type StoreFactoryOptions } from './stores/index.js';
export { createSource, DEFAULT_MAX_BYTES, SourceTooLargeError, sourceDeclSchema, type InputSource, type ListOptions, type ReadOptions, type SourceDecl, type SourceObject } from './sources/index.js';
