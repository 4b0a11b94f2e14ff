import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const REPO = join(__dirname, '../../../..');

/** A server in a child process (TypeScript run through @swc-node/register), with its output collected. */
export class ChildServer {
  readonly stdout: string[] = [];
  readonly stderr: string[] = [];
  url = '';
  private readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly dir: string;

  private constructor(
    readonly child: ChildProcess,
    dir: string,
  ) {
    this.dir = dir;
    let partial = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      const parts = (partial + chunk).split('\n');
      partial = parts.pop() ?? '';
      this.stdout.push(...parts.filter((l) => l !== ''));
    });
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => this.stderr.push(chunk));
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  /** Spawns `entry` (relative to the repo) with `env` on top of a clean, local configuration. */
  static spawn(entry: string, env: Record<string, string>): ChildServer {
    const dir = mkdtempSync(join(tmpdir(), 'vla-child-'));
    const child = spawn(process.execPath, ['-r', '@swc-node/register', join(REPO, entry)], {
      cwd: REPO,
      env: {
        PATH: process.env.PATH,
        HOST: '127.0.0.1',
        PORT: '0',
        DATABASE_URL: `sqlite:${join(dir, 'platform.sqlite')}`,
        LOG_LEVEL: 'info',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return new ChildServer(child, dir);
  }

  /** Parsed JSON log lines so far. */
  records(): Record<string, unknown>[] {
    return this.stdout.map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  /** Resolves with the first log record satisfying `predicate`; rejects if the process exits first. */
  async waitForLog(
    predicate: (r: Record<string, unknown>) => boolean,
    ceilingMs = 30_000,
  ): Promise<Record<string, unknown>> {
    const deadline = Date.now() + ceilingMs;
    let exited = false;
    void this.exited.then(() => (exited = true));
    for (;;) {
      const found = this.records().find(predicate);
      if (found) return found;
      if (exited) throw new Error(`process exited first; stderr: ${this.stderr.join('')}`);
      if (Date.now() > deadline) throw new Error(`no matching log line within ${ceilingMs} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async waitUntilListening(): Promise<string> {
    const line = await this.waitForLog((r) => typeof r.msg === 'string' && r.msg.startsWith('listening on'));
    this.url = line.url as string;
    return this.url;
  }

  exit(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    return this.exited;
  }

  async dispose(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.exited;
    rmSync(this.dir, { recursive: true, force: true });
  }
}
