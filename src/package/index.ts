/**
 * Model packages, one layer for every reader (the edge runtime, the cloud service, the CLI):
 * the manifest schema, reading and validation, checksums, external data, and writing a package.
 */
export { ManifestSchema, VariantIdSchema, VariantSchema, type Manifest, type ManifestInput, type Variant } from './schema.js';
export { addVariant, variantModelName, variantPackages, VARIANT_SEPARATOR, type AddVariantOptions } from './variants.js';
export { ModelPackageError } from './errors.js';
export { modelChecksum, readLabels, readPackage, type ModelPackage } from './read.js';
export { verifyListedFiles, type VerifiedFile } from './checksums.js';
export { externalReferences, plainLocation, readCheckedModel, type CheckOptions, type CheckedModel } from './external-data.js';
export { checkPipelineFits } from './pipeline-fit.js';
export { createPackage, type CreatePackageOptions, type CreatedPackage } from './create.js';
