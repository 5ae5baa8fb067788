// When the handler container may stop. A kubelet sends SIGTERM to every container of a pod at once,
// so a handler that exits on it closes the connections the runtime still sends on while it drains
// (a request that waited for its session reaches the handler after that): the request fails with
// no answer, though the handler never ran it. The operator gives the handler container a preStop
// hook (controller/pool/handler-container.ts) that asks the worker GET /lifecycle/handler-stop; the
// kubelet sends the handler SIGTERM only once it is answered, which is when the worker sends the
// handler nothing more: the drain of its own stop is done. A hook that comes with no stop (the
// handler container alone restarted, a liveness failure) is answered after `waitMs`, which also
// covers a hook that arrives just before the worker's own SIGTERM.

/** The route the handler container's preStop hook asks (server.ts serves it). */
export const HANDLER_STOP_PATH = '/lifecycle/handler-stop';
export const HANDLER_STOP_WAIT_MS = 5_000;

export class HandlerRelease {
  private drained: Promise<unknown> | undefined;
  private readonly began: Promise<void>;
  private begin: () => void = () => undefined;
  private readonly waitMs: number;

  constructor(waitMs = HANDLER_STOP_WAIT_MS) {
    this.waitMs = waitMs;
    this.began = new Promise((resolve) => (this.begin = resolve));
  }

  /** The worker's stop began; `drained` settles when its drain is done (nothing is sent after it). */
  stopping(drained: Promise<unknown>): void {
    this.drained ??= drained;
    this.begin();
  }

  /** Settles when the handler may stop: the stop's drain is done, or no stop began within waitMs. */
  async released(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const stopBegan = await Promise.race([
      this.began.then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), this.waitMs))),
    ]);
    clearTimeout(timer);
    if (stopBegan) await this.drained?.catch(() => undefined);
  }
}
