/**
 * A bounded FIFO mailbox. `offer()` refuses when full — there is no unbounded queue anywhere —
 * and the caller decides what a refusal means (an error reply for an ask, a counted and logged
 * drop for a tell). A ring buffer, so a busy actor does no per-message allocation for the queue.
 */
export class Mailbox<T> {
  readonly capacity: number;
  #buf: (T | undefined)[];
  #head = 0;
  #size = 0;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`mailbox capacity must be a positive integer, got ${capacity}`);
    this.capacity = capacity;
    this.#buf = new Array<T | undefined>(Math.min(capacity, 1024));
  }

  get size(): number {
    return this.#size;
  }

  /** False when full (nothing is enqueued). */
  offer(item: T): boolean {
    if (this.#size >= this.capacity) return false;
    if (this.#size === this.#buf.length) this.#grow();
    this.#buf[(this.#head + this.#size) % this.#buf.length] = item;
    this.#size++;
    return true;
  }

  poll(): T | undefined {
    if (this.#size === 0) return undefined;
    const item = this.#buf[this.#head];
    this.#buf[this.#head] = undefined;
    this.#head = (this.#head + 1) % this.#buf.length;
    this.#size--;
    return item;
  }

  /** Removes and returns everything queued (for refusing it all on stop). */
  drainAll(): T[] {
    const out: T[] = [];
    for (let m = this.poll(); m !== undefined; m = this.poll()) out.push(m);
    return out;
  }

  #grow(): void {
    const next = new Array<T | undefined>(Math.min(this.capacity, this.#buf.length * 2));
    for (let i = 0; i < this.#size; i++) next[i] = this.#buf[(this.#head + i) % this.#buf.length];
    this.#buf = next;
    this.#head = 0;
  }
}
