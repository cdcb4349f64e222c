/**
 * Loopback emulators of the three object stores, for `tandem demo`, `tandem emulators start`
 * and the batch example: S3 (s3rver behind a SigV4-verifying front), GCS (JSON API, optional
 * bearer token) and OSS (V1 signatures verified). Each holds what it is sent until stopped.
 */
import { GcsFake } from './gcs.js';
import { OssFake } from './oss.js';
import { S3Emulator, type S3Credentials } from './s3.js';

export { GcsFake } from './gcs.js';
export { OssFake } from './oss.js';
export { S3Emulator, verifySigV4, type S3Credentials, type S3EmulatorOptions } from './s3.js';

export interface EmulatorOptions {
  s3?: { port?: number; region: string; buckets: readonly string[]; credentials: S3Credentials; directory?: string };
  gcs?: { port?: number; bucket: string; token?: string };
  oss?: { port?: number; bucket: string; credentials: { accessKeyId: string; accessKeySecret: string } };
}

export interface Emulators {
  s3?: S3Emulator;
  gcs?: GcsFake;
  oss?: OssFake;
  stop(): Promise<void>;
}

/** Starts the emulators asked for; if one fails to start, the ones already started are stopped. */
export async function startEmulators(options: EmulatorOptions): Promise<Emulators> {
  const started: Emulators = {
    stop: async () => {
      await Promise.allSettled([started.s3?.stop(), started.gcs?.stop(), started.oss?.stop()]);
    },
  };
  try {
    if (options.s3) {
      const { port, ...rest } = options.s3;
      started.s3 = await new S3Emulator(rest).start(port);
    }
    if (options.gcs) {
      const gcs = new GcsFake(options.gcs.bucket);
      gcs.token = options.gcs.token;
      started.gcs = await gcs.start(options.gcs.port);
    }
    if (options.oss) started.oss = await new OssFake(options.oss.bucket, { [options.oss.credentials.accessKeyId]: options.oss.credentials.accessKeySecret }).start(options.oss.port);
    return started;
  } catch (error) {
    await started.stop();
    throw error;
  }
}
