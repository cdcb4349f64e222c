/** Catalogue entries of model packages, the edge runtime and the cloud providers. */
import { inArea } from './info.js';

/** A model package (manifest, model file, checksums, labels) as the edge runtime loads it. */
export const PACKAGE_CODES = inArea('package', {
  RUNTIME_PACKAGE_MISSING: { status: 500, retryable: false, meaning: 'The model package folder or file does not exist.' },
  RUNTIME_PACKAGE_MODEL: { status: 500, retryable: false, meaning: 'The model file the manifest names is not in the package.' },
  RUNTIME_PACKAGE_SHA256: { status: 500, retryable: false, meaning: 'A package file does not match, or no longer matches, its sha256 in manifest.json, or cannot be read to check it.' },
  RUNTIME_PACKAGE_LABELS: { status: 500, retryable: false, meaning: "The manifest's labels file cannot be read." },
  RUNTIME_MANIFEST_JSON: { status: 400, retryable: false, meaning: 'manifest.json is not valid JSON.' },
  RUNTIME_PACKAGE_VARIANT: { status: 400, retryable: false, meaning: 'A model variant cannot be added (bad or taken id, no manifest, external data) or a plan names a variant the package does not have.' },
  RUNTIME_PACKAGE_LOCKED: { status: 503, retryable: true, meaning: "Another writer (the pid in the message) held the package's manifest.json.lock for longer than the caller would wait to add a variant." },
  RUNTIME_MANIFEST: { status: 400, retryable: false, meaning: 'manifest.json does not satisfy the schema, or names a path outside the package.' },
  PACKAGE_PIPELINE: { status: 400, retryable: false, meaning: "The package's pipeline makes a tensor the model's input cannot take (dtype, layout, size)." },
  RUNTIME_MODEL_READ: { status: 500, retryable: false, meaning: 'The model file cannot be read.' },
  RUNTIME_MODEL_CHANGED: { status: 500, retryable: false, meaning: 'The model file changed on disk since it was registered.' },
  PACKAGE_INPUT: { status: 400, retryable: false, meaning: "`tandem package create`: an input named (--input, --shape) is not one of the model's, or the model has several and none was named." },
  PACKAGE_SHAPE: { status: 400, retryable: false, meaning: '`tandem package create`: a --shape does not fit the rank or static dims the model declares.' },
  PACKAGE_EXTERNAL_DATA: { status: 400, retryable: false, meaning: "`tandem package create`: an external data location leaves the model's folder, so it cannot be copied into a package." },
  PACKAGE_OUT_NOT_EMPTY: { status: 400, retryable: false, meaning: '`tandem package create`: --out exists and is not an empty folder.' },
});

export const RUNTIME_CODES = inArea('runtime', {
  RUNTIME_INPUT: { status: 400, retryable: false, meaning: 'infer() got an input it cannot use: a missing input, an image with no pipeline for it, or a tensor of a dtype or shape the model does not take.' },
  RUNTIME_SYNTHETIC_INPUT: { status: 400, retryable: false, meaning: 'An input has a dtype that cannot be synthesised for profiling.' },
  RUNTIME_ENDPOINT: { status: 400, retryable: false, meaning: 'Two configured endpoints have the same name.' },
  RUNTIME_OPTION: { status: 500, retryable: false, meaning: 'A runtime or pool option is out of range (workers, queue, slowdown).' },
  RUNTIME_PLAN: { status: 500, retryable: false, meaning: 'A fixed plan names an endpoint that is not configured.' },
  RUNTIME_PARTITION: { status: 500, retryable: false, meaning: 'The model cannot be split at the planned cut, or the tail needs a tensor nothing provides.' },
  RUNTIME_MODEL_SOURCE: { status: 500, retryable: false, meaning: 'A worker was handed a model with neither bytes nor a path.' },
  RUNTIME_MODEL_LOAD: { status: 500, retryable: false, meaning: 'onnxruntime could not load the model, or its external data cannot be resolved or read.' },
  RUNTIME_EDGE_RUN: { status: 500, retryable: false, meaning: 'onnxruntime failed to run the model on the edge (the cloud answers it as CLOUD_MODEL_ERROR).' },
  RUNTIME_WORKER_FAILED: { status: 503, retryable: true, meaning: 'A worker thread crashed while running the request; a replacement takes the next one.' },
  RUNTIME_QUEUE_FULL: { status: 503, retryable: true, meaning: "The edge pool's queue is at its bound and the caller asked not to wait." },
  RUNTIME_ABORTED: { status: 500, retryable: false, meaning: "The caller's AbortSignal fired before the request completed (the cloud answers it as CLOUD_CLIENT_CLOSED)." },
  RUNTIME_DEADLINE_EXCEEDED: { status: 504, retryable: false, meaning: "The request's deadline passed before a result was available (the cloud answers it as CLOUD_DEADLINE)." },
  RUNTIME_CLOSED: { status: 500, retryable: false, meaning: 'The pool or runtime is closed and takes no new work (the cloud answers it as CLOUD_DRAINING).' },
  RUNTIME_FAILED: { status: 500, retryable: false, meaning: 'Inference failed for a reason no more specific code covers.' },
  PATH_PSEUDO_FS: { status: 400, retryable: false, meaning: 'A folder to create or write in is on a kernel pseudo filesystem (/proc, /sys, cgroup…), which cannot hold files.' },
  PATH_NOT_DIRECTORY: { status: 400, retryable: false, meaning: 'A folder to create has an existing level that is a file, not a folder.' },
});

/** Failures of calls to cloud endpoints, classified so a caller can tell a retry from a final answer. */
export const PROVIDER_CODES = inArea('providers', {
  PROVIDER_THROTTLED: { status: 503, retryable: true, meaning: 'The endpoint (or its credential service) throttled the call: 429 or a throttling error.' },
  PROVIDER_UNAVAILABLE: { status: 503, retryable: true, meaning: 'The endpoint answered 5xx (other than 501).' },
  PROVIDER_TIMEOUT: { status: 503, retryable: true, meaning: 'The endpoint did not answer before the deadline, or answered 408/504.' },
  PROVIDER_NETWORK: { status: 503, retryable: true, meaning: 'The connection to the endpoint failed (refused, reset, DNS).' },
  PROVIDER_AUTH: { status: 500, retryable: false, meaning: "The endpoint refused the credentials (401/403), or the client's credential chain failed." },
  PROVIDER_VALIDATION: { status: 500, retryable: false, meaning: 'The endpoint refused the request as invalid (400/404/413), or it is over the message limit.' },
  PROVIDER_MODEL: { status: 500, retryable: false, meaning: "The endpoint's model rejected the inputs." },
  PROVIDER_RESPONSE: { status: 500, retryable: false, meaning: "The endpoint's answer cannot be decoded, or the call failed in a way with no better code." },
  PROVIDER_ABORTED: { status: 500, retryable: false, meaning: "The caller's signal aborted the call." },
  PROVIDER_TLS: { status: 500, retryable: false, meaning: 'The endpoint presented a certificate this client does not accept (a private CA? set caFile).' },
  PROVIDER_CONFIG: { status: 500, retryable: false, meaning: "The endpoint's configuration is invalid (kind, URL, transport, missing fields)." },
  PROVIDER_PROXY: { status: 500, retryable: false, meaning: 'The outbound proxy refused the tunnel (CONNECT answered 403, 407 or another 4xx): its policy or credentials, not the endpoint.' },
});
