/**
 * Typed failures of model packages. The package layer raises the edge runtime's codes
 * (`RUNTIME_PACKAGE_*`, `RUNTIME_MANIFEST*`); the cloud service maps them to its own at its
 * boundary (see `cloud/models.ts`).
 */
import { TandemError } from '../errors/index.js';
import type { ListedFile } from './read.js';

/** A model package (folder or file) is missing, unreadable or inconsistent. */
export class ModelPackageError extends TandemError {}

/** What a check after load adds to a mismatch: the file was fine when the package was read. */
export const CHANGED_SINCE_LOAD = ': it changed on disk after the package was loaded';

/** A listed file whose bytes are not the manifest's; `since` says when it was last known good. */
export function mismatch(file: Pick<ListedFile, 'listed' | 'path' | 'sha256'>, actual: string, since = ''): ModelPackageError {
  return new ModelPackageError('RUNTIME_PACKAGE_SHA256', `${file.listed} ${since ? 'no longer matches' : 'does not match'} the sha256 in manifest.json${since}`, {
    details: { path: file.path, declared: file.sha256, actual },
  });
}

/** A listed file that cannot be read, with the reason (`ENOENT`…) in the message. */
export function unreadableListed(file: Pick<ListedFile, 'listed' | 'path'>, error: unknown): ModelPackageError {
  const reason = (error as NodeJS.ErrnoException).code ?? (error instanceof Error ? error.message : String(error));
  return new ModelPackageError('RUNTIME_PACKAGE_SHA256', `manifest.json lists ${file.listed}, which cannot be read (${reason})`, { cause: error, details: { path: file.path } });
}
