/** A pino destination that keeps every JSON line, so tests can assert on what was logged. */
export class LogCapture {
  readonly lines: string[] = [];
  private partial = '';

  write(chunk: string): void {
    const text = this.partial + chunk;
    const parts = text.split('\n');
    this.partial = parts.pop() ?? '';
    for (const line of parts) if (line !== '') this.lines.push(line);
  }

  /** Every line parsed; throws if any line is not one JSON object (log injection would show here). */
  records(): Record<string, unknown>[] {
    return this.lines.map((line) => JSON.parse(line) as Record<string, unknown>);
  }

  /** The access lines (`request completed`). */
  accessLines(): Record<string, unknown>[] {
    return this.records().filter((r) => r.msg === 'request completed');
  }

  text(): string {
    return this.lines.join('\n');
  }
}
