// Building blocks the controllers use on the shared informers: a handler that enqueues only when
// the fields a controller reads change (a signature), and a long jittered resync of a chosen set
// of keys. Each controller registers its own handlers on the one informer per resource and
// feeds its own queue; the informers themselves never re-emit (resync off).
import type { KubernetesObject } from '@kubernetes/client-node';
import { objectKey, type InformerHandler } from '../../kube/informer.ts';

/**
 * A handler that calls enqueue with obj's key(s) when the object appears, goes, or its
 * signature changes; updates that leave the signature alone (status heartbeats, our own status
 * writes, resyncs) are dropped. `why` says what changed, for debug logs. A controller that
 * registers on an informer already synced passes its cache as `known` (it enqueues its keys
 * itself on starting), so the first update of each object is compared, not taken as new.
 */
export function onChange<T extends KubernetesObject>(
  signature: (obj: T) => string,
  toKey: (obj: T) => string | string[] | undefined,
  enqueue: (key: string, why: string) => void,
  known: Iterable<T> = [],
): InformerHandler<T> {
  const seen = new Map<string, string>();
  for (const obj of known) seen.set(objectKey(obj), signature(obj));
  return (event, obj) => {
    const id = objectKey(obj);
    const keys = toKey(obj);
    const each = (why: string) => {
      if (keys === undefined) return;
      for (const key of Array.isArray(keys) ? keys : [keys]) enqueue(key, why);
    };
    if (event === 'delete') {
      seen.delete(id);
      each(`${obj.kind ?? 'object'} ${id} deleted`);
      return;
    }
    const sig = signature(obj);
    const before = seen.get(id);
    if (before === sig) return;
    seen.set(id, sig);
    each(`${obj.kind ?? 'object'} ${id} ${before === undefined ? 'seen' : 'changed'}`);
  };
}

export interface Resync {
  stop(): void;
}

/**
 * Every periodMs ± 10 %: enqueue each of keys() after a random delay within a tenth of the
 * period (at most a minute), so keys never come all at once. periodMs <= 0: off.
 */
export function jitteredResync(
  periodMs: number,
  keys: () => string[],
  enqueue: (key: string, delayMs: number) => void,
  random: () => number = Math.random,
): Resync {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  const schedule = () => {
    if (periodMs <= 0 || stopped) return;
    timer = setTimeout(
      () => {
        const spread = Math.min(60_000, periodMs / 10);
        for (const key of keys()) enqueue(key, Math.floor(random() * spread));
        schedule();
      },
      Math.round(periodMs * (0.9 + 0.2 * random())),
    );
    timer.unref();
  };
  schedule();
  return {
    stop: () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
