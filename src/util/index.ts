/** Small shared helpers: checksums, hashing, a seedable random generator, the bounded queue and the deadline helper. */
export { BoundedQueue, type BoundedQueueOptions, type QueueAcquireOptions, type QueueRefusals } from './bounded-queue.js';
export { crc32, crc32Implementation, type Crc32 } from './crc32.js';
export { mulberry32 } from './random.js';
export { fileSha256, sha256Hex } from './sha256.js';
export { deadlineSignal, raceAbort, watchDeadline, type DeadlineOptions, type DeadlineScope, type EndedBy } from './deadline.js';
