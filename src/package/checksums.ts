/**
 * Checking the files a manifest vouches for against their SHA-256: streamed (listed files are
 * external weights as often as not, past what one read can hold), with the fingerprint of the
 * contents that were hashed, so a later reader can tell whether a file may have changed since.
 */
import { TandemError } from '../errors/index.js';
import { mismatch, unreadableListed } from './errors.js';
import { hashFile, type FileFingerprint } from './fingerprint.js';
import { listedFiles, type ListedFile, type ModelPackage } from './read.js';

/** A listed file as checked: its hash and the fingerprint of what was hashed. */
export interface VerifiedFile extends ListedFile {
  fingerprint: FileFingerprint;
}

/**
 * Hashes every file the manifest lists other than the model and refuses the package
 * (`RUNTIME_PACKAGE_SHA256`) when one does not match or cannot be read: a package is trusted
 * whole or not at all.
 */
export async function verifyListedFiles(pkg: ModelPackage): Promise<VerifiedFile[]> {
  const verified: VerifiedFile[] = [];
  for (const file of listedFiles(pkg)) {
    let checked: { sha256: string; fingerprint: FileFingerprint };
    try {
      checked = await hashFile(file.path);
    } catch (error) {
      if (error instanceof TandemError) throw error;
      throw unreadableListed(file, error);
    }
    if (checked.sha256 !== file.sha256) throw mismatch(file, checked.sha256);
    verified.push({ ...file, fingerprint: checked.fingerprint });
  }
  return verified;
}

