// The loopback fakes live in demo/emulators/ so that `tandem demo` and the batch example can start them too.
export { FakeServer, type FakeObject, type LoggedRequest } from '../../demo/emulators/fake-server.js';
