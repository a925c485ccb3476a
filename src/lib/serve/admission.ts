// Admission for `bgrm serve`: `slots` requests inside the native core at once, `queue` more
// waiting in order, the rest refused (503) rather than held without bound.

export class Admission {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(
    private readonly slots: number,
    private readonly queue: number,
  ) {}
  get inFlight(): number {
    return this.active;
  }
  get queued(): number {
    return this.waiting.length;
  }
  /** Resolves to a release function, or undefined when both the slots and the queue are full. */
  async enter(): Promise<(() => void) | undefined> {
    if (this.active >= this.slots) {
      if (this.waiting.length >= this.queue) return undefined;
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else this.active++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next) next(); // the slot passes on
      else this.active--;
    };
  }
}
