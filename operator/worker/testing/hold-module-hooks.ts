// Module hooks for tests (registered by `node --import ./operator/worker/testing/hold-module.ts`):
// the load of the module whose URL ends with SPO_TEST_HOLD_MODULE writes SPO_TEST_HOLD_MARKER, then
// waits SPO_TEST_HOLD_MS before it goes on, so a test can signal a process still loading its modules.
import { writeFileSync } from 'node:fs';
import type { LoadHook } from 'node:module';

export const load: LoadHook = async (url, context, nextLoad) => {
  const suffix = process.env.SPO_TEST_HOLD_MODULE;
  if (suffix && url.endsWith(suffix)) {
    writeFileSync(process.env.SPO_TEST_HOLD_MARKER ?? '/dev/null', url);
    await new Promise((resolve) => setTimeout(resolve, Number(process.env.SPO_TEST_HOLD_MS ?? 0)));
  }
  return nextLoad(url, context);
};
