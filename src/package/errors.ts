/**
 * Typed failures of model packages. The package layer raises the edge runtime's codes
 * (`RUNTIME_PACKAGE_*`, `RUNTIME_MANIFEST*`); the cloud service maps them to its own at its
 * boundary (see `cloud/models.ts`).
 */
import { TandemError } from '../errors/index.js';

/** A model package (folder or file) is missing, unreadable or inconsistent. */
export class ModelPackageError extends TandemError {}
