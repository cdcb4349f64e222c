/**
 * Structured channel pruning without retraining: channels chosen on calibration activations,
 * the layers after them re-solved by least squares, the result measured and written as a
 * model package (see docs/design/pruning.md).
 */
export { PruneError } from './errors.js';
export { prunePackage, type PruneOptions, type PruneReport, type PrunedLayer } from './prune.js';
export type { Fidelity, FidelityKind } from './fidelity.js';
