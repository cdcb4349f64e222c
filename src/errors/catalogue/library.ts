/** Catalogue entries of the library's data areas: tensors, the codec, the JSON wires, graphs, planning, pre-processing and the shaper. */
import { inArea } from './info.js';

export const TENSOR_CODES = inArea('tensor', {
  TENSOR_DTYPE: { status: 400, retryable: false, meaning: 'A tensor has an unknown dtype, or data of an array type its dtype does not use.' },
  TENSOR_DIMS: { status: 400, retryable: false, meaning: 'A tensor has an invalid dimension, or an element count its dims do not give.' },
  TENSOR_DATA_LENGTH: { status: 400, retryable: false, meaning: 'Raw tensor bytes are not a whole number of elements of the dtype.' },
});

export const CODEC_CODES = inArea('codec', {
  CODEC_TRUNCATED: { status: 400, retryable: false, meaning: 'A tensor payload ends before its header, descriptor or data section does.' },
  CODEC_MAGIC: { status: 400, retryable: false, meaning: 'The bytes are not a Tandem tensor payload (bad magic).' },
  CODEC_VERSION: { status: 400, retryable: false, meaning: 'The payload format version is one this build does not read.' },
  CODEC_DIMS_MISMATCH: { status: 400, retryable: false, meaning: "A tensor's dims are invalid or do not match its declared byte length." },
  CODEC_DTYPE: { status: 400, retryable: false, meaning: 'A tensor in the payload has a dtype the codec does not know.' },
  CODEC_TOO_LARGE: { status: 413, retryable: false, meaning: 'The payload, its descriptor, its tensor count or a rank is over the configured limit.' },
  CODEC_INTEGRITY: { status: 400, retryable: false, meaning: "The payload's checksum does not match (corrupted in transit)." },
  CODEC_MALFORMED: { status: 400, retryable: false, meaning: 'The payload is structurally malformed (a missing field, bytes after the data section).' },
  CODEC_UNSUPPORTED: { status: 400, retryable: false, meaning: 'A tensor asks for a compression its dtype cannot use (float16/int8 apply to float32 only).' },
  CODEC_VALUE: { status: 400, retryable: false, meaning: 'int8 compression met a value that is not finite.' },
});

/** The JSON wires of the providers and the cloud service: OIP v2, Vertex AI instances, nested-array tensors. */
export const WIRE_CODES = inArea('wire', {
  OIP_JSON: { status: 400, retryable: false, meaning: 'An OIP v2 body is not valid JSON.' },
  OIP_REQUEST: { status: 400, retryable: false, meaning: 'The body is not an OIP v2 inference request.' },
  OIP_RESPONSE: { status: 400, retryable: false, meaning: 'An answer is not an OIP v2 inference response.' },
  OIP_DUPLICATE: { status: 400, retryable: false, meaning: 'An OIP v2 tensor name appears twice.' },
  OIP_DATATYPE: { status: 400, retryable: false, meaning: 'An OIP v2 tensor has a datatype Tandem does not support.' },
  OIP_DATA: { status: 400, retryable: false, meaning: 'An OIP v2 tensor has no data, or data that is not an array.' },
  OIP_TOO_LARGE: { status: 400, retryable: false, meaning: 'An OIP v2 tensor has more elements than the limit.' },
  OIP_BINARY: { status: 400, retryable: false, meaning: 'The binary section of an OIP v2 body does not add up (sizes, unclaimed bytes, header length).' },
  OIP_DIMS_MISMATCH: { status: 400, retryable: false, meaning: "An OIP v2 tensor's binary_data_size does not match its shape and datatype." },
  OIP_TRUNCATED: { status: 400, retryable: false, meaning: "The OIP v2 binary section ends before a tensor's bytes do." },
  VERTEX_INSTANCES: { status: 400, retryable: false, meaning: 'Vertex AI instances are empty, incomplete or of differing shapes.' },
  VERTEX_PREDICTIONS: { status: 400, retryable: false, meaning: 'A Vertex AI answer has no predictions, or predictions that are not objects keyed by output.' },
  VERTEX_TOO_LARGE: { status: 400, retryable: false, meaning: 'A Vertex AI input has more elements than the limit.' },
  WIRE_SHAPE: { status: 400, retryable: false, meaning: 'JSON tensor data is not a rectangular array, or is nested too deep.' },
  WIRE_DIMS_MISMATCH: { status: 400, retryable: false, meaning: 'JSON tensor data has a value count its shape does not give.' },
  WIRE_VALUE: { status: 400, retryable: false, meaning: 'A JSON tensor value is not a valid value of its dtype.' },
});

export const GRAPH_CODES = inArea('graph', {
  GRAPH_FILE_NOT_FOUND: { status: 500, retryable: false, meaning: 'The model file does not exist.' },
  GRAPH_FILE_UNREADABLE: { status: 500, retryable: false, meaning: 'The model file cannot be read.' },
  GRAPH_NOT_ONNX: { status: 500, retryable: false, meaning: 'The file is not an ONNX model, or has no graph with nodes and outputs.' },
  GRAPH_TRUNCATED: { status: 500, retryable: false, meaning: 'The ONNX protobuf ends before its data does.' },
  GRAPH_INVALID: { status: 500, retryable: false, meaning: 'The graph is inconsistent: a tensor produced twice or never, a cycle, a dangling read.' },
  GRAPH_DTYPE: { status: 500, retryable: false, meaning: 'A tensor type Tandem cannot map to or from ONNX.' },
  GRAPH_EXTERNAL_DATA_MISSING: { status: 500, retryable: false, meaning: "An external data file the model names is missing, or the model came as bytes with no folder to look in." },
  GRAPH_EXTERNAL_DATA_INVALID: { status: 500, retryable: false, meaning: "An external data reference is invalid: no location, outside the model's folder, not a regular file, or out of range." },
  GRAPH_UNKNOWN_CUT: { status: 404, retryable: false, meaning: 'The cut id names no cut of the model (the cloud answers it as CLOUD_CUT_NOT_FOUND).' },
  GRAPH_OUTPUT_DIR: { status: 500, retryable: false, meaning: 'The partition files cannot be written to the output folder.' },
  GRAPH_SHAPE_UNKNOWN_INPUT: { status: 400, retryable: false, meaning: '--shape names an input the model does not have.' },
  GRAPH_SHAPE_RANK: { status: 400, retryable: false, meaning: "--shape gives a rank other than the input's." },
  GRAPH_SHAPE_INVALID: { status: 400, retryable: false, meaning: '--shape gives a dimension that is not a positive integer up to 2^53 - 1.' },
  GRAPH_SHAPE_MISMATCH: { status: 400, retryable: false, meaning: 'A --shape dimension contradicts a fixed dimension of the input.' },
  GRAPH_SHAPE_DYNAMIC: { status: 400, retryable: false, meaning: 'An input has a dynamic dimension and no --shape value for it.' },
  GRAPH_SHAPE_RUN: { status: 500, retryable: false, meaning: 'Running the model to measure tensor sizes failed.' },
  GRAPH_SIZE_TOO_LARGE: { status: 500, retryable: false, meaning: 'A tensor dimension, byte size or cut size is past 2^53 - 1, where it could not be counted or written exactly.' },
  GRAPH_NESTING_TOO_DEEP: { status: 500, retryable: false, meaning: 'Control-flow subgraphs (If, Loop, Scan) are nested deeper than Tandem reads.' },
});

export const PLANNER_CODES = inArea('planner', {
  PLANNER_BAD_OPTION: { status: 400, retryable: false, meaning: "A planner option or an endpoint's link figures are out of range." },
  PLANNER_BAD_UNIT: { status: 400, retryable: false, meaning: 'A bandwidth or duration is not a positive quantity with a known unit.' },
  PLANNER_VARIANT_UNMEASURED: { status: 400, retryable: false, meaning: 'maxAccuracyDrop is set but a model variant in the profile has no measured accuracy drop to weigh against it.' },
  PLANNER_DUPLICATE_ENDPOINT: { status: 400, retryable: false, meaning: 'Two endpoints given to the cost model have the same name.' },
  PROFILE_INVALID: { status: 400, retryable: false, meaning: 'A profile.json is not JSON, or not a Tandem profile.' },
  PROFILE_WRITE: { status: 500, retryable: false, meaning: 'The profile cannot be written to the --out file.' },
});

export const PREPROCESS_CODES = inArea('preprocess', {
  IMAGE_EMPTY: { status: 400, retryable: false, meaning: 'The image is 0 bytes.' },
  IMAGE_CORRUPT: { status: 400, retryable: false, meaning: 'The image cannot be decoded, or is not image bytes at all.' },
  IMAGE_FORMAT: { status: 400, retryable: false, meaning: 'The image format is not JPEG, PNG, WebP or raw pixels.' },
  IMAGE_ZERO_SIZE: { status: 400, retryable: false, meaning: 'The image has a zero or invalid width or height.' },
  IMAGE_CHANNELS: { status: 400, retryable: false, meaning: 'The image has a channel count the pipeline cannot use.' },
  IMAGE_RAW_LENGTH: { status: 400, retryable: false, meaning: 'A raw pixel buffer has a length its width, height and channels do not give.' },
  IMAGE_TOO_LARGE: { status: 400, retryable: false, meaning: "The image has more pixels, or a longer side, than the pipeline's limit (maxPixels, maxSide); refused before decoding." },
  IMAGE_ASPECT_RATIO: { status: 400, retryable: false, meaning: "The image's longer side is more times its shorter than the pipeline's maxAspectRatio; refused before decoding." },
  IMAGE_CROP: { status: 400, retryable: false, meaning: "The pipeline's crop does not fit inside the image." },
  TEXT_BOXES_DTYPE: { status: 400, retryable: false, meaning: "The text detector's probability map is not float32." },
  TEXT_BOXES_SHAPE: { status: 400, retryable: false, meaning: "The text detector's probability map is not [1, 1, H, W]." },
  IMAGE_FOLDER: { status: 400, retryable: false, meaning: 'A folder of images (calibration, holdout) or a file in it cannot be read.' },
  IMAGE_DECODER_UNAVAILABLE: { status: 500, retryable: false, meaning: 'The image decoder (sharp) cannot be loaded.' },
  POSTPROCESS_OUTPUT: { status: 500, retryable: false, meaning: 'The output the post-processing reads is not among the model outputs.' },
  POSTPROCESS_DTYPE: { status: 500, retryable: false, meaning: "The classification output's dtype is not numeric." },
});

export const SHAPER_CODES = inArea('shaper', {
  SHAPER_BAD_SHAPE: { status: 400, retryable: false, meaning: 'A link shape has a bandwidth ≤ 0 or a negative delay or jitter.' },
  SHAPER_BAD_TRACE: { status: 400, retryable: false, meaning: 'A bandwidth trace is not a valid JSON or text trace.' },
  SHAPER_NOT_LISTENING: { status: 500, retryable: false, meaning: 'The shaper was asked for its address before it listened.' },
});
