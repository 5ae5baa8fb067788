// `node --import ./operator/worker/testing/hold-module.ts ...`: registers hold-module-hooks.ts.
import { register } from 'node:module';

register('./hold-module-hooks.ts', import.meta.url);
