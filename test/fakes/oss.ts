// The OSS fake lives in demo/emulators/ so that `tandem demo` and the batch example can start it too.
export { OssFake } from '../../demo/emulators/oss.js';
