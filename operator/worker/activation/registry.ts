// The activations of one worker (Centralized and Dual modes; docs/activation.md). For a request to
// session S it decides where S runs:
//   - this worker holds an activation of S -> queue it there;
//   - the store names another live worker W as owner -> forward to W (one hop), unless the request
//     was forwarded already: then activate here if the lease is free or lapsed, else SESSION_MOVING;
//   - the store names no owner (or a lapsed one) -> claim (new epoch) and activate;
//   - the store names this worker but it holds no activation (a handover or a store-level move made
//     it owner) -> adopt: an activation at the lease's epoch.
// Leases are renewed only for activations (in one batch); an activation idle for idleMs releases its
// lease. So an idle session costs no Redis command, and the owner index names live activations.
import type { Logger } from '../../observability/logger.ts';
import type { Lease, SessionRecord, SessionStore } from '../../store/types.ts';
import { WorkerError, errorCode, toWorkerError, sessionMoving } from '../errors.ts';
import type { LeaseTracker } from '../sessions/types.ts';
import { Activation } from './activation.ts';
import type { WorkerDirectory } from './forward.ts';

export interface RegistryOptions {
  store: SessionStore;
  pool: string;
  worker: string;
  /** Lease length; renewed when a third of it is left. */
  leaseMs: number;
  /** An activation without a request for this long releases its lease. */
  idleMs: number;
  directory: WorkerDirectory;
  logger: Logger;
}

export type Route = { kind: 'local'; activation: Activation } | { kind: 'forward'; worker: string; endpoint: string };

const LEASE_GONE = new Set(['LEASE_LOST', 'SESSION_NOT_FOUND', 'FENCED', 'SESSION_MOVING']);

export class ActivationRegistry implements LeaseTracker {
  private readonly o: RegistryOptions;
  private readonly active = new Map<string, Activation>();
  /** Activations being set up (claim or adopt): concurrent requests share one. */
  private readonly starting = new Map<string, Promise<Activation>>();
  /** Releases in flight: a request for the session waits for its release before reading the owner. */
  private readonly releasing = new Map<string, Promise<void>>();
  /** Until when this worker's registration is surely live (set at each heartbeat): before then no peer
   *  takes its leases over for gone, so its activations may run on their warm records. */
  private liveUntil = 0;
  private readonly trusted = () => Date.now() < this.liveUntil;

  constructor(options: RegistryOptions) {
    this.o = options;
  }

  /** The heartbeat wrote the registration (0: it failed, trust nothing warm). `until` is at most one
   *  heartbeat after it started: peers see the registration for three heartbeats. */
  confirmLive(until: number): void {
    this.liveUntil = until;
  }

  get size(): number {
    return this.active.size;
  }

  get(id: string): Activation | undefined {
    return this.active.get(id);
  }

  /** The activation once one being set up (a claim or an adoption in flight) is ready; undefined when
   *  there is none, or its set-up failed. */
  async settled(id: string): Promise<Activation | undefined> {
    await this.starting.get(id)?.catch(() => undefined);
    return this.active.get(id);
  }

  ids(): string[] {
    return [...this.active.keys()];
  }

  /** Where a request for the session runs. `forwardedBy` is set for a request another worker forwarded. */
  async route(id: string, forwardedBy?: string): Promise<Route> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const held = this.active.get(id);
      if (held) return { kind: 'local', activation: held };
      const pending = this.starting.get(id) ?? this.releasing.get(id);
      if (pending) {
        await pending.catch(() => undefined);
        continue;
      }
      const route = await this.resolve(id, forwardedBy);
      if (route) return route;
    }
    throw sessionMoving(id, 'changed owner while this request was routed');
  }

  private async resolve(id: string, forwardedBy: string | undefined): Promise<Route | undefined> {
    const { store, pool, worker } = this.o;
    let record: SessionRecord | null;
    try {
      record = await store.get(id, { touch: false, pool });
    } catch (error) {
      throw toWorkerError(error, id);
    }
    if (!record || record.pool !== pool) throw new WorkerError('SESSION_NOT_FOUND', `session ${id} not found`);
    if (record.movingBy) throw sessionMoving(id, 'is being moved');
    if (record.owner === worker) return { kind: 'local', activation: await this.start(id, () => this.adopt(record)) };
    if (record.owner && !forwardedBy) {
      const endpoint = await this.o.directory.endpointOf(record.owner);
      if (endpoint) return { kind: 'forward', worker: record.owner, endpoint };
    }
    // No owner, a lapsed or dead one, or a forwarded request whose owner moved on: claim it here.
    const activation = await this.start(id, () => this.claim(id)).catch(async (error: unknown) => {
      if (errorCode(error) !== 'SESSION_OWNED') throw error;
      // An unexpired lease of a worker whose registration is gone (killed): take it over with a
      // compare-and-swap on (owner, epoch); the fence refuses any late write of the old owner.
      if (record.owner && (await this.o.directory.isGone(record.owner)))
        return this.start(id, () => this.takeOver(id, record.owner!, record.epoch));
      if (forwardedBy) throw sessionMoving(id, 'is held by another worker');
      return undefined; // someone else won the claim: route again (forward to it)
    });
    return activation ? { kind: 'local', activation } : undefined;
  }

  private async takeOver(id: string, owner: string, epoch: number): Promise<Activation> {
    const [outcome] = await this.o.store
      .moveOwners(this.o.pool, [{ sessionId: id, fromOwner: owner, fromEpoch: epoch, toOwner: this.o.worker }])
      .catch((error: unknown) => Promise.reject(toWorkerError(error, id)));
    if (outcome?.status !== 'moved') throw sessionMoving(id, 'changed owner while it was taken over');
    this.o.logger.info({ sessionId: id, from: owner, epoch: outcome.epoch }, 'took over the session of a worker that is gone');
    return new Activation(
      { sessionId: id, pool: this.o.pool, owner: this.o.worker, epoch: outcome.epoch, expiresAt: Date.now() + this.o.leaseMs },
      this.trusted,
    );
  }

  private start(id: string, make: () => Promise<Activation>): Promise<Activation> {
    let pending = this.starting.get(id);
    if (!pending) {
      pending = make()
        .then((activation) => {
          this.active.set(id, activation);
          return activation;
        })
        .finally(() => this.starting.delete(id));
      this.starting.set(id, pending);
    }
    return pending;
  }

  private async claim(id: string): Promise<Activation> {
    try {
      const lease = await this.o.store.claim(id, this.o.worker, { pool: this.o.pool, leaseMs: this.o.leaseMs });
      return new Activation(lease, this.trusted);
    } catch (error) {
      if (errorCode(error) === 'SESSION_OWNED') throw error;
      throw toWorkerError(error, id);
    }
  }

  /** The store names this worker: take the lease at its epoch (a renew checks owner and epoch). */
  private async adopt(record: SessionRecord): Promise<Activation> {
    const lease: Lease = { sessionId: record.id, pool: this.o.pool, owner: this.o.worker, epoch: record.epoch, expiresAt: 0 };
    try {
      return new Activation(await this.o.store.renew(lease, this.o.leaseMs), this.trusted);
    } catch (error) {
      if (LEASE_GONE.has(errorCode(error) ?? '')) throw sessionMoving(record.id, 'changed owner while it was adopted');
      throw toWorkerError(error, record.id);
    }
  }

  /** An activation for a session this worker just created, imported or loaded with itself as owner. */
  held(record: SessionRecord, created = false): void {
    if (record.owner !== this.o.worker || record.anonymous || this.active.has(record.id)) return;
    this.active.set(
      record.id,
      new Activation(
        { sessionId: record.id, pool: this.o.pool, owner: this.o.worker, epoch: record.epoch, expiresAt: Date.now() + this.o.leaseMs },
        this.trusted,
        created,
      ),
    );
  }

  /** The session was deleted. */
  dropped(id: string): void {
    this.drop(id, 'released');
  }

  /** Forgets an activation without touching the store (its lease is lost or its session gone). */
  drop(id: string, reason: 'lost' | 'released' = 'lost'): void {
    const activation = this.active.get(id);
    if (!activation) return;
    activation.end({ reason });
    this.active.delete(id);
  }

  /** Ends an activation after a handover: its held requests go to `target`. */
  handedOver(activation: Activation, target: string): void {
    activation.end({ reason: 'handed-over', target });
    if (this.active.get(activation.id) === activation) this.active.delete(activation.id);
  }

  /** Renews, in one batch, the leases of live activations that lapse within two thirds of their length. */
  async renewDue(): Promise<void> {
    const horizon = Date.now() + (this.o.leaseMs * 2) / 3;
    const due = [...this.active.values()].filter((a) => a.lease.expiresAt <= horizon);
    await Promise.all(
      due.map(async (a) => {
        try {
          a.lease = await this.o.store.renew(a.lease, this.o.leaseMs);
        } catch (error) {
          if (LEASE_GONE.has(errorCode(error) ?? '')) {
            this.o.logger.info({ sessionId: a.id, code: errorCode(error) }, 'activation lost its lease');
            if (this.active.get(a.id) === a) this.drop(a.id);
          } else this.o.logger.debug({ sessionId: a.id, code: errorCode(error) }, 'lease renewal failed; will retry');
        }
      }),
    );
  }

  /** Releases the leases of activations idle for idleMs (all idle ones with `all`); returns how many. */
  async deactivateIdle(all = false): Promise<number> {
    const cutoff = Date.now() - this.o.idleMs;
    const idle = [...this.active.values()].filter((a) => a.idle && !a.holding && (all || a.lastUsedAt <= cutoff));
    await Promise.all(idle.map((a) => this.release(a)));
    return idle.length;
  }

  private release(a: Activation): Promise<void> {
    this.drop(a.id, 'released');
    const done = this.o.store
      .release(a.lease)
      .catch((error: unknown) => this.o.logger.debug({ sessionId: a.id, code: errorCode(error) }, 'lease release failed'))
      .finally(() => this.releasing.delete(a.id));
    this.releasing.set(a.id, done);
    return done;
  }

  /** Releases every activation's lease (drain): waits for each one's queued requests first, up to the deadline. */
  async releaseAll(deadlineMs: number): Promise<number> {
    const all = [...this.active.values()];
    await Promise.all(all.map((a) => a.hold(deadlineMs)));
    await Promise.all(all.map((a) => this.release(a)));
    for (const a of all) a.open();
    return all.length;
  }
}
