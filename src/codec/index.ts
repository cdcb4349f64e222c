/** The tensor wire format and cut-tensor compression. */
export { CodecError, type CodecErrorCode } from './errors.js';
export {
  CODEC_VERSION, TENSOR_CONTENT_TYPE, DEFAULT_LIMITS, encodeTensorMap, encodeTensorMapWithReport, decodePayload, decodeTensorMap,
  looksLikeTensorPayload, type CodecLimits, type Compression, type EncodeOptions, type EncodedPayload, type DecodedPayload,
} from './format.js';
export { type CompressionReport } from './quantize.js';
export { PayloadChecksum, type PayloadDigest } from './checksum.js';
export { float32ToFloat16, float16ToFloat32, toFloat16Bits, fromFloat16Bits } from './float16.js';
