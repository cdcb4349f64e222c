/** Catalogue entries of structured channel pruning (`tandem prune`, src/prune). */
import { inArea } from './info.js';

export const PRUNE_CODES = inArea('prune', {
  PRUNE_NO_PIPELINE: { status: 400, retryable: false, meaning: 'The package declares no image pipeline, so calibration images cannot be turned into inputs.' },
  PRUNE_KEEP: { status: 400, retryable: false, meaning: '--keep is not a number in (0, 1].' },
  PRUNE_OPTION: { status: 400, retryable: false, meaning: 'A pruning option is out of range: --loss-floor is not a finite number ≥ 0, or --sensitivity-images is not a whole number ≥ 1.' },
  PRUNE_CALIB_TOO_FEW: { status: 400, retryable: false, meaning: 'The calibration (or holdout) folder holds fewer images than pruning needs.' },
  PRUNE_IMAGE: { status: 400, retryable: false, meaning: "A calibration or holdout image cannot be read, or the package's pipeline refuses it." },
  PRUNE_LABELS: { status: 400, retryable: false, meaning: 'The holdout labels file cannot be read, or names an image or class that does not exist.' },
  PRUNE_NOTHING_PRUNABLE: { status: 400, retryable: false, meaning: 'The model (or the head up to --upto) has no layer whose channels can be pruned.' },
  PRUNE_UNSUPPORTED: { status: 400, retryable: false, meaning: 'The model cannot be pruned: it is not float32, or its input is not a single image tensor.' },
  PRUNE_OUT: { status: 400, alsoStatus: [500], retryable: false, meaning: 'The output package folder exists and is not empty (400), or cannot be written (500).' },
  PRUNE_VARIANT: { status: 400, retryable: false, meaning: '--variant cannot be recorded: an id the package already uses or cannot take, no --holdout, or a holdout measurement that says nothing of accuracy (only the relative output error).' },
  PRUNE_SOLVE: { status: 500, retryable: false, meaning: 'The least-squares reconstruction of a layer failed (a singular system even with the ridge term).' },
});
