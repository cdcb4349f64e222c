/** Small shared helpers: checksums, hashing, a seedable random generator, the bounded queue, the deadline helper and safe folder creation. */
export { BoundedQueue, type BoundedQueueOptions, type QueueAcquireOptions, type QueueRefusals } from './bounded-queue.js';
export { crc32, crc32Implementation, type Crc32 } from './crc32.js';
export { mulberry32 } from './random.js';
export { fileSha256, sha256Hex } from './sha256.js';
export { deadlineSignal, raceAbort, watchDeadline, type DeadlineOptions, type DeadlineScope, type EndedBy } from './deadline.js';
export { ensureDir, UnusablePathError } from './ensure-dir.js';
export { median } from './stats.js';
export { keyPath, MAX_YAML_ALIAS_COUNT, parseYamlSafely, positionOf, type YamlIssue, type YamlParse } from './yaml.js';
