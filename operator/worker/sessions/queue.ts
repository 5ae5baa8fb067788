// Requests to one session, one at a time in arrival order; different sessions in parallel.
export class SessionQueue {
  private readonly tails = new Map<string, Promise<void>>();

  run<T>(id: string, work: () => Promise<T>): Promise<T> {
    const turn = (this.tails.get(id) ?? Promise.resolve()).then(work);
    const tail = turn.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(id, tail);
    // The last one out removes the entry: the map holds only sessions with queued work.
    void tail.then(() => {
      if (this.tails.get(id) === tail) this.tails.delete(id);
    });
    return turn;
  }
}
