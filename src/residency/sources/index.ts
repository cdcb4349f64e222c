/** Builds the input source a batch config declares. */
import type { StoreFactoryOptions } from '../stores/index.js';
import { GcsSource } from './gcs.js';
import { LocalSource } from './local.js';
import { OssSource } from './oss.js';
import { S3Source } from './s3.js';
import type { InputSource, SourceDecl } from './types.js';

/** Connection options per kind: the same ones the result stores take. */
export function createSource(name: string, decl: SourceDecl, options: StoreFactoryOptions = {}): InputSource {
  switch (decl.type) {
    case 'local':
      return new LocalSource(name, decl);
    case 's3':
      return new S3Source(name, decl, options.s3);
    case 'gcs':
      return new GcsSource(name, decl, options.gcs);
    case 'oss':
      return new OssSource(name, decl, options.oss);
  }
}

export { GcsSource, LocalSource, OssSource, S3Source };
export { DEFAULT_MAX_BYTES, SourceTooLargeError, sourceDeclSchema, type InputSource, type ListOptions, type ReadOptions, type SourceDecl, type SourceObject } from './types.js';
