// WorkerLocal as activations without the store (docs/activation.md "WorkerLocal"): a session lives in
// one worker's memory, and that worker runs its requests one at a time. A request reaching another
// worker is forwarded to it in one hop; the client's session routing is only a hint. Where a session
// lives is found without the store: the last forward's hint, else the pool's workers are asked at once
// (GET /v1/sessions/{id}/holder). When no worker holds it, the store may (a drain wrote it there, or it
// was left from Dual or Centralized): the receiving worker takes the lease (the mutual exclusion of two
// loaders), takes the session into memory and deletes the store copy.
import type { Logger } from '../../observability/logger.ts';
import type { SessionStore } from '../../store/types.ts';
import { WorkerError, errorCode, toWorkerError, sessionMoving } from '../errors.ts';
import type { SessionModes } from '../sessions/modes.ts';
import { OwnerUnreachable, type Forwarder, type WorkerDirectory } from './forward.ts';
import { forwardRequest, type RoutedReply, type SessionRequest } from './router.ts';

export interface MemoryRouterOptions {
  store: SessionStore;
  pool: string;
  worker: string;
  modes: SessionModes;
  directory: WorkerDirectory;
  forwarder: Forwarder;
  logger: Logger;
  /** Whether this worker holds the session (its memory, or its activation in Dual): the holder probe's answer. */
  holds(id: string): boolean;
  /** Length of the lease taken while a session is loaded from the store. */
  leaseMs?: number;
}

/** The path of the holder probe a worker answers for its peers. */
export function holderPath(id: string): string {
  return `/v1/sessions/${encodeURIComponent(id)}/holder`;
}

/** How long a peer may take to answer the holder probe. */
const PROBE_TIMEOUT_MS = 2_000;
/** Where sessions were last found (session id -> worker), the oldest dropped first. */
const MAX_HINTS = 10_000;

type Loaded = { kind: 'here' } | { kind: 'forward'; worker: string; endpoint: string } | { kind: 'missing' } | { kind: 'busy' };

export class MemoryRouter {
  private readonly o: MemoryRouterOptions;
  private readonly hints = new Map<string, { worker: string; endpoint: string }>();
  /** Loads from the store in progress: concurrent requests for one session share one. */
  private readonly loading = new Map<string, Promise<Loaded>>();

  constructor(options: MemoryRouterOptions) {
    this.o = options;
  }

  /** The peer that holds the session (its memory, or its activation), asked in parallel; undefined when none
   *  does. `fresh` re-reads the pool's workers first. */
  async findHolder(id: string, fresh = false): Promise<{ worker: string; endpoint: string } | undefined> {
    return (await this.search(id, fresh)).holder;
  }

  /** Asks every peer; `complete` is false when one of them gave no answer (it may hold the session). */
  async search(id: string, fresh = false): Promise<{ holder?: { worker: string; endpoint: string }; complete: boolean }> {
    const peers = await this.o.directory.peers(this.o.worker, fresh);
    const answers = await Promise.all(
      peers.map(async (peer): Promise<boolean | undefined> => {
        try {
          const reply = await this.o.forwarder.send(peer.endpoint, 'GET', holderPath(id), undefined, {}, PROBE_TIMEOUT_MS);
          if (reply.status !== 200) return undefined;
          return (JSON.parse(reply.body) as { held?: unknown }).held === true;
        } catch (error) {
          // Refused: nothing listens there (the worker exited), so it holds nothing; else no answer.
          return error instanceof OwnerUnreachable && error.refused ? false : undefined;
        }
      }),
    );
    const at = answers.indexOf(true);
    return { ...(at >= 0 ? { holder: peers[at]! } : {}), complete: !answers.includes(undefined) };
  }

  /** The 404 for a session no worker holds and the store lacks, once every worker answered; else a retry. */
  async notFound(id: string, request: SessionRequest, notFound: unknown): Promise<RoutedReply> {
    const { holder, complete } = await this.search(id, true);
    const reply = holder ? await this.forward(id, holder, request) : undefined;
    if (reply) return reply;
    if (holder || !complete) throw sessionMoving(id, 'was not found, but a worker did not answer');
    throw notFound;
  }

  /** Routes a WorkerLocal request: here when this worker holds the session, else to its holder in one hop. */
  async run(id: string, request: SessionRequest, runHere: () => Promise<RoutedReply>): Promise<RoutedReply> {
    for (let attempt = 0; attempt < 3; attempt++) {
      if (this.o.modes.local.has(id)) return this.here(id, runHere);
      if (request.forwardedBy !== undefined) {
        // Sent here as the holder (one hop only): load it if the store has it for this worker or for none.
        // Neither here nor in the store: the sender's view is out of date (another worker took it meanwhile),
        // so it is a retry, not a 404: the sender searches again.
        const loaded = await this.load(id, false);
        if (loaded.kind === 'here') return this.here(id, runHere);
        throw sessionMoving(id, loaded.kind === 'missing' ? 'is not on this worker' : 'is held by another worker');
      }
      // A hint to a worker that left the listing (or drains) is not followed: its pod IP may be gone too.
      const hint = this.hints.get(id);
      if (hint && !this.o.directory.listed(hint.worker)) this.hints.delete(id);
      else if (hint) {
        const reply = await this.forward(id, hint, request);
        if (reply && reply.status !== 409 && reply.status !== 503 && reply.status !== 404) return reply;
        this.hints.delete(id);
      }
      const holder = await this.findHolder(id);
      if (holder) {
        const reply = await this.forward(id, holder, request);
        // A 404 from the worker that said it holds the session: it left there meanwhile; look again.
        if (reply && reply.status !== 404) return reply;
        continue;
      }
      const loaded = await this.load(id, true);
      if (loaded.kind === 'here') return this.here(id, runHere);
      if (loaded.kind === 'missing') {
        // Another worker may have taken it from the store since it was asked, or have registered since the
        // listing was read: ask again, with a fresh listing, before answering that it does not exist.
        return this.notFound(id, request, new WorkerError('SESSION_NOT_FOUND', `session ${id} not found`));
      }
      if (loaded.kind === 'forward') {
        const reply = await this.forward(id, loaded, request);
        if (reply) return reply;
      }
    }
    throw sessionMoving(id, 'was not found on a worker that could serve it');
  }

  /** Dual: a session the store lacks may be in a WorkerLocal peer's memory (during a switch): forward there. */
  async elsewhere(id: string, request: SessionRequest, notFound: unknown): Promise<RoutedReply> {
    // Routed in Dual, but this worker switched to WorkerLocal while the store was read: the session may be
    // in this worker's memory now, or a peer's; the retry is routed in the new mode.
    if (this.o.modes.mode === 'WorkerLocal') throw sessionMoving(id, 'was looked for while this worker changed session mode');
    // Only Dual meets WorkerLocal peers (the steps go through Dual): in Centralized a 404 asks nobody.
    if (this.o.modes.mode !== 'Dual') throw notFound;
    // Forwarded here as its owner, but a WorkerLocal peer took it meanwhile: the sender searches again.
    if (request.forwardedBy !== undefined) throw sessionMoving(id, 'is not on this worker');
    return this.notFound(id, request, notFound);
  }

  private async here(id: string, runHere: () => Promise<RoutedReply>): Promise<RoutedReply> {
    this.hints.delete(id);
    try {
      return await runHere();
    } catch (error) {
      // Left memory between the check and the run (a drain wrote it to the store, or a mode switch): retry.
      if (errorCode(error) === 'SESSION_NOT_ON_WORKER') throw sessionMoving(id, 'left this worker');
      throw error;
    }
  }

  /** Forwards and remembers where; undefined when the worker could not be reached (nothing sent). */
  private async forward(id: string, to: { worker: string; endpoint: string }, request: SessionRequest): Promise<RoutedReply | undefined> {
    try {
      const reply = await forwardRequest(this.o.forwarder, to.endpoint, to.worker, request);
      this.hints.delete(id);
      this.hints.set(id, { worker: to.worker, endpoint: to.endpoint });
      if (this.hints.size > MAX_HINTS) this.hints.delete(this.hints.keys().next().value!);
      return reply;
    } catch (error) {
      if (!(error instanceof OwnerUnreachable)) throw error;
      if (error.refused) this.o.directory.markRefused(to.worker);
      this.hints.delete(id);
      return undefined;
    }
  }

  private load(id: string, mayForward: boolean): Promise<Loaded> {
    let pending = this.loading.get(id);
    if (!pending) {
      pending = this.loadFromStore(id, mayForward).finally(() => this.loading.delete(id));
      this.loading.set(id, pending);
    }
    return pending;
  }

  /** Takes the session from the store into memory when the store names this worker, no worker, or one
   *  that is gone or draining (its drain wrote the session there); else says who holds its lease. */
  private async loadFromStore(id: string, mayForward: boolean): Promise<Loaded> {
    const { store, pool, worker, directory } = this.o;
    if (this.o.modes.local.has(id)) return { kind: 'here' };
    let record;
    try {
      record = await store.get(id, { touch: false, pool });
    } catch (error) {
      throw toWorkerError(error, id);
    }
    if (!record || record.pool !== pool || record.anonymous) return { kind: 'missing' };
    if (record.movingBy) throw sessionMoving(id, 'is being moved');
    const owner = record.owner;
    // A live owner that is not draining runs the session (Dual) or is loading it: it is asked, not overruled.
    // It is taken over only when a fresh listing shows it draining or no longer has it, or its endpoint
    // refused a connection (a listing read before the owner registered would not name it).
    if (owner && owner !== worker && !(await directory.drainingOrGone(owner))) {
      const endpoint = await directory.endpointOf(owner);
      return endpoint && mayForward ? { kind: 'forward', worker: owner, endpoint } : { kind: 'busy' };
    }
    try {
      if (owner && owner !== worker) {
        // The owner is draining or gone: compare-and-swap on (owner, epoch), as a takeover.
        const [outcome] = await store.moveOwners(pool, [{ sessionId: id, fromOwner: owner, fromEpoch: record.epoch, toOwner: worker }]);
        if (outcome?.status !== 'moved') return { kind: 'busy' };
      } else await store.claim(id, worker, { pool, ...(this.o.leaseMs ? { leaseMs: this.o.leaseMs } : {}) });
      const fresh = await store.get(id, { touch: false, pool });
      if (!fresh || fresh.pool !== pool) return { kind: 'missing' };
      await this.o.modes.takeIntoMemory(fresh);
    } catch (error) {
      const code = errorCode(error);
      if (code === 'SESSION_OWNED') return { kind: 'busy' };
      if (code === 'SESSION_NOT_FOUND') return { kind: 'missing' };
      throw toWorkerError(error, id);
    }
    this.o.logger.debug({ sessionId: id, from: owner }, 'took a session from the store into memory');
    return { kind: 'here' };
  }
}
