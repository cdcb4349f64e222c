/**
 * Model packages, one layer for every reader (the edge runtime, the cloud service, the CLI):
 * the manifest schema, reading and validation, checksums, external data, and writing a package.
 */
export { ManifestSchema, Sha256Schema, describeIssues, type Manifest, type ManifestInput } from './schema.js';
export { ModelPackageError } from './errors.js';
export { isInside, packageFile, packageRelative } from './paths.js';
export { listedFiles, modelChecksum, readLabels, readPackage, type ListedFile, type ModelPackage } from './read.js';
export { fingerprintOf, hashFile, sameFingerprint, type FileFingerprint } from './fingerprint.js';
export { mismatch, unreadableListed, verifyListedFiles, type VerifiedFile } from './checksums.js';
export { externalReferences, plainLocation, readCheckedModel, type CheckOptions, type CheckedModel } from './external-data.js';
export { checkPipelineFits, pipelineSize } from './pipeline-fit.js';
export { PACKAGE_LABELS_FILE, PACKAGE_MODEL_FILE, createPackage, type CreatePackageOptions, type CreatedPackage } from './create.js';
