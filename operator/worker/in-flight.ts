// The session requests a worker is serving, counted so that a drain can wait for them.
/** Counts in-flight work and lets a drain wait until it is zero. */
export class InFlight {
  private count = 0;
  private waiters: (() => void)[] = [];

  get size(): number {
    return this.count;
  }

  enter(): void {
    this.count++;
  }

  leave(): void {
    this.count--;
    if (this.count === 0) {
      for (const resolve of this.waiters.splice(0)) resolve();
    }
  }

  /** Resolves true when idle, false when the deadline passed first. */
  async idle(deadlineMs: number): Promise<boolean> {
    if (this.count === 0) return true;
    let timer: NodeJS.Timeout | undefined;
    const done = await Promise.race([
      new Promise<boolean>((resolve) => this.waiters.push(() => resolve(true))),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), Math.max(0, deadlineMs - Date.now())))),
    ]);
    clearTimeout(timer);
    return done;
  }
}
