/** Image and tensor pipelines declared in a model package's manifest. */
export { ImageError, PipelineSpecError } from './errors.js';
export { IMAGE_EXTENSIONS, imageFileToTensor, imageFiles } from './image-folder.js';
export { imageToTensor, isRawImage, toFloat16Bits, type ImageInput, type RawImage } from './image.js';
export { boxF1, boxIou, matchBoxes, textBoxes, type TextBox, type TextBoxOptions } from './text-boxes.js';
export { postprocess, softmax, fromFloat16Bits, type ClassScore } from './postprocess.js';
export { CropSchema, PipelineSchema, PostprocessSchema, ResizeSchema, type PipelineSpec, type PipelineSpecInput, type PostprocessSpec } from './schema.js';
