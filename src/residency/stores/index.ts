/** Builds the result store a policy declares. */
import type { Policy, StoreDecl } from '../policy.js';
import { GcsStore, type GcsStoreOptions } from './gcs.js';
import { LocalDiskStore } from './local.js';
import { OssStore, type OssStoreOptions } from './oss.js';
import { S3Store, type S3StoreOptions } from './s3.js';
import type { ResultStore } from './types.js';

export interface StoreFactoryOptions {
  s3?: S3StoreOptions;
  gcs?: GcsStoreOptions;
  oss?: OssStoreOptions;
}

export function createStore(name: string, decl: StoreDecl, options: StoreFactoryOptions = {}): ResultStore {
  switch (decl.type) {
    case 'local':
      return new LocalDiskStore(name, decl);
    case 's3':
      return new S3Store(name, decl, options.s3);
    case 'gcs':
      return new GcsStore(name, decl, options.gcs);
    case 'oss':
      return new OssStore(name, decl, options.oss);
  }
}

/** One store per declaration in the policy, keyed by name. */
export function createStores(policy: Policy, options: StoreFactoryOptions = {}): Map<string, ResultStore> {
  return new Map(Object.entries(policy.stores).map(([name, decl]) => [name, createStore(name, decl, options)]));
}

export { GcsStore, LocalDiskStore, OssStore, S3Store };
export { resultKey, type ObjectInfo, type PutMeta, type ResultStore, type StoredObject } from './types.js';
