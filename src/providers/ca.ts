/**
 * Per-endpoint trust: `EndpointConfig.caFile`, a PEM bundle whose certificates replace the
 * default roots for that endpoint alone (like curl's `--cacert`). The process-wide settings
 * (`NODE_EXTRA_CA_CERTS`, `GRPC_DEFAULT_SSL_ROOTS_FILE_PATH`) would make every endpoint, and
 * every store, trust a private CA that only one of them is signed by.
 */
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { ProviderError } from './errors.js';

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----\r?\n[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * The certificates of an endpoint's `caFile` as one PEM bundle. Rejects with `PROVIDER_CONFIG`
 * for a file that cannot be read, holds no PEM certificate, or holds one that does not parse:
 * each transport would otherwise take it here and fail later, on a connection, with an error
 * that names neither the file nor the endpoint.
 */
export async function readCaFile(endpoint: string, file: string): Promise<Buffer> {
  const what = `endpoint "${endpoint}": caFile "${file}"`;
  const details = { endpoint, caFile: file };
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new ProviderError('PROVIDER_CONFIG', `${what} cannot be read: ${error instanceof Error ? error.message : String(error)}`, { cause: error, details });
  }
  const blocks = text.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) throw new ProviderError('PROVIDER_CONFIG', `${what} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`, { details });
  for (const [i, block] of blocks.entries()) {
    try {
      new X509Certificate(block);
    } catch (error) {
      throw new ProviderError('PROVIDER_CONFIG', `${what}: certificate ${i + 1} of ${blocks.length} does not parse: ${error instanceof Error ? error.message : String(error)}`, { cause: error, details });
    }
  }
  // Only the certificates: bundles often carry comments, or other PEM blocks, between them.
  return Buffer.from(`${blocks.join('\n')}\n`);
}
