/**
 * What a device of each platform runs besides the bundle: the packages kept out of it because
 * they load native binaries from paths relative to themselves (onnxruntime-node, sharp, aws-crt)
 * or start their own worker files (piscina), each trimmed to that platform's binaries.
 */

export const PLATFORMS = ['linux-x64', 'linux-arm64'] as const;
export type Platform = (typeof PLATFORMS)[number];

/** Cloud SDKs a device may opt into; none is shipped unless asked for. */
export const SDKS = ['sagemaker', 's3', 'vertex', 'gcs', 'oss', 'greengrass'] as const;
export type Sdk = (typeof SDKS)[number];

/** The npm packages each opt-in SDK loads (lazily, see src/lazy.ts), copied with their dependencies. */
export const SDK_PACKAGES: Readonly<Record<Sdk, readonly string[]>> = {
  sagemaker: ['@aws-sdk/client-sagemaker-runtime'],
  s3: ['@aws-sdk/client-s3'],
  vertex: ['@google-cloud/aiplatform', 'google-gax'],
  gcs: ['@google-cloud/storage'],
  oss: ['ali-oss'],
  // The IPC client is bundled; its native transport is not bundleable.
  greengrass: ['aws-crt'],
};

/** Every package the bundle leaves to node_modules (the SDKs' too, shipped or not). */
export const EXTERNAL_PACKAGES = [
  'onnxruntime-node',
  'sharp',
  'piscina',
  '@node-rs/crc32',
  // Optional native speed-up of msgpackr; it falls back to JavaScript without it.
  'msgpackr-extract',
  ...Object.values(SDK_PACKAGES).flat(),
  '@aws-sdk/*',
  '@google-cloud/*',
  '@grpc/*',
] as const;

export interface PlatformParts {
  os: 'linux';
  arch: 'x64' | 'arm64';
  /** Packages every artifact of this platform ships; `optional` ones are left out, with a note, when absent. */
  packages: ReadonlyArray<{ name: string; optional?: boolean; why: string }>;
}

export function platformParts(platform: Platform): PlatformParts {
  const arch = platform === 'linux-arm64' ? 'arm64' : 'x64';
  return {
    os: 'linux',
    arch,
    packages: [
      { name: 'onnxruntime-node', why: 'the edge runtime' },
      { name: 'sharp', why: 'image pre-processing' },
      { name: `@img/sharp-linux-${arch}`, why: "sharp's binding" },
      { name: `@img/sharp-libvips-linux-${arch}`, why: "sharp's libvips" },
      { name: 'piscina', why: 'the edge worker pool' },
      { name: '@node-rs/crc32', optional: true, why: 'fast CRC-32 (node:zlib otherwise)' },
      { name: `@node-rs/crc32-linux-${arch}-gnu`, optional: true, why: "@node-rs/crc32's binary" },
    ],
  };
}

/**
 * Whether a file of an installed package belongs in a device's copy: documentation, type
 * declarations, source maps and other platforms' binaries do not. `rel` uses `/`.
 */
export function keepFile(pkg: string, rel: string, parts: PlatformParts): boolean {
  const base = rel.slice(rel.lastIndexOf('/') + 1);
  if (/\.(d\.[cm]?ts|map|md|markdown|ts|cc|h|gyp)$/i.test(base) && !/^licen[cs]e/i.test(base)) return false;
  if (rel.includes('/node_modules/')) return false;
  switch (pkg) {
    case 'onnxruntime-node':
      // dist/binding.js requires ../bin/napi-v*/<platform>/<arch>/onnxruntime_binding.node.
      if (rel.startsWith('bin/')) return new RegExp(`^bin/napi-v\\d+/${parts.os}/${parts.arch}/`).test(rel);
      return rel === 'package.json' || rel.startsWith('dist/') || /^licen[cs]e/i.test(rel);
    case 'sharp':
      return rel === 'package.json' || rel.startsWith('dist/') || /^licen[cs]e/i.test(rel);
    case 'aws-crt':
      // dist/native/binding.js looks in dist/bin/<platform>-<arch>-<libc>/.
      if (rel.startsWith('dist/bin/')) return rel.startsWith(`dist/bin/${parts.os}-${parts.arch}-glibc/`);
      return rel === 'package.json' || rel.startsWith('dist/') || /^licen[cs]e/i.test(rel);
    default:
      return true;
  }
}

/** Dependencies a package needs only to install itself (onnxruntime-node's binary download script). */
export const INSTALL_ONLY: Readonly<Record<string, readonly string[]>> = {
  'onnxruntime-node': ['adm-zip', 'global-agent'],
};

/**
 * Optional dependencies worth following for a platform: only that platform's binary packages
 * (sharp lists every platform's, piscina its @napi-rs/nice builds).
 */
export function followOptional(dep: string, parts: PlatformParts): boolean {
  return dep.includes(`linux-${parts.arch}`) && !dep.includes('musl') && !dep.includes('linuxmusl');
}
