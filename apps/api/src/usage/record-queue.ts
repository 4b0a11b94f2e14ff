/**
 * A first-in first-out queue with O(1) `push` and `take(n)` in O(n) of what it takes: an array read from a
 * moving head, compacted once the consumed prefix is at least half of it (amortised O(1) per item).
 */
export class RecordQueue<T> {
  private items: T[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  /** Removes and returns up to `n` of the oldest items, oldest first. */
  take(n: number): T[] {
    const taken = this.items.slice(this.head, this.head + n);
    this.head += taken.length;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return taken;
  }

  clear(): void {
    this.items = [];
    this.head = 0;
  }
}
