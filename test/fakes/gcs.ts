// The GCS fake lives in demo/emulators/ so that `tandem demo` and the batch example can start it too.
export { GcsFake } from '../../demo/emulators/gcs.js';
