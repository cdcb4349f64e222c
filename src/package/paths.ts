/**
 * Paths a manifest names (the model, the files it vouches for), which must stay inside the
 * package folder. One spelling per file: `./weights.bin` and `weights.bin` are one key.
 */
import { isAbsolute, posix, relative, resolve, sep } from 'node:path';
import { ValidationError } from '../errors/index.js';

/**
 * The normalised form of a manifest-relative path, or a `RUNTIME_MANIFEST` refusal for one
 * that is absolute, names the folder itself, leaves it, or is spelt with `\` or NUL (which
 * would mean different files on different hosts).
 */
export function packageRelative(path: string, what: string): string {
  const normal = posix.normalize(path);
  if (path.includes('\\') || path.includes('\0') || isAbsolute(path) || normal === '.' || normal === '..' || normal.startsWith('../') || normal.endsWith('/')) {
    throw new ValidationError('RUNTIME_MANIFEST', `the ${what} path ${path} must name a file inside the package folder`, { details: { path } });
  }
  return normal;
}

/** Whether `path` (absolute) lies strictly inside `dir` (absolute). */
export function isInside(dir: string, path: string): boolean {
  const rel = relative(dir, path);
  return rel !== '' && rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel);
}

/** Absolute path of a manifest-relative file. */
export function packageFile(dir: string, listed: string): string {
  return resolve(dir, listed);
}
