// One logger factory for the operator and the workers: JSON lines (pino), a component name on
// every line, and a level from SPO_LOG_LEVEL. Session data and secrets are never logged:
// callers pass ids, counts and reasons only, and the redact list guards the usual fields.
import { pino, type Logger } from 'pino';

export type { Logger };

const root = pino({
  level: process.env.SPO_LOG_LEVEL ?? 'info',
  base: { pid: process.pid },
  redact: {
    paths: ['data', '*.data', 'password', '*.password', 'token', '*.token', 'authorization', '*.authorization'],
    censor: '[redacted]',
  },
  timestamp: pino.stdTimeFunctions.isoTime,
});

export function createLogger(component: string, bindings: Record<string, unknown> = {}): Logger {
  return root.child({ component, ...bindings });
}
