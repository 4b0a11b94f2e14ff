export type CircuitState = 'closed' | 'open' | 'half_open';

/**
 * Counts consecutive failures of a dependency. After `threshold` of them the circuit opens: callers stop
 * using the dependency, and one probe at a time (half-open) decides whether to close it again.
 */
export class CircuitBreaker {
  private current: CircuitState = 'closed';
  private failures = 0;

  constructor(
    private readonly threshold: number,
    private readonly onChange: (from: CircuitState, to: CircuitState) => void,
  ) {}

  get state(): CircuitState {
    return this.current;
  }

  /** Whether callers may use the dependency now. */
  get closed(): boolean {
    return this.current === 'closed';
  }

  success(): void {
    this.failures = 0;
    this.move('closed');
  }

  failure(): void {
    if (this.current === 'closed') {
      this.failures += 1;
      if (this.failures >= this.threshold) this.move('open');
    } else {
      this.move('open');
    }
  }

  /** An open circuit lets one probe through. */
  probe(): boolean {
    if (this.current !== 'open') return false;
    this.move('half_open');
    return true;
  }

  private move(to: CircuitState): void {
    const from = this.current;
    if (from === to) return;
    this.current = to;
    if (to === 'open') this.failures = 0;
    this.onChange(from, to);
  }
}
