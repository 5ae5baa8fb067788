// Idempotency records of a WorkerLocal session, kept in the worker's memory beside the session (no store):
// the same rules as the store's records (docs/activation.md "Idempotency-Key"): a retry with a recorded key
// gets the recorded reply and the handler does not run; records older than `keepMs` read as absent; at
// most `maxEntries` per session, the oldest dropped first. They live and die with their session.
import type { JsonValue } from '../../store/types.ts';

export interface LocalReply {
  /** When it was recorded (ms since the epoch). */
  at: number;
  /** The session's version the reply carried. */
  version: number;
  result: JsonValue;
}

export interface ReplyLimits {
  keepMs: number;
  maxEntries: number;
}

/** One session's records, oldest first (a Map keeps insertion order, and a key is recorded once). */
export class LocalReplies {
  private readonly entries = new Map<string, LocalReply>();

  get size(): number {
    return this.entries.size;
  }

  /** The recorded reply for this key, or undefined when none is recorded or it has expired. */
  lookup(key: string, limits: ReplyLimits, now = Date.now()): LocalReply | undefined {
    const reply = this.entries.get(key);
    return reply && now - reply.at < limits.keepMs ? reply : undefined;
  }

  record(key: string, reply: LocalReply, limits: ReplyLimits): void {
    this.entries.delete(key);
    this.entries.set(key, reply);
    for (const [oldest, entry] of this.entries) {
      const over = this.entries.size > limits.maxEntries;
      if (!over && reply.at - entry.at < limits.keepMs) break;
      this.entries.delete(oldest);
    }
  }
}
