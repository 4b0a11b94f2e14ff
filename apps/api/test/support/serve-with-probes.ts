// Runs the real server, configured from the environment like main.ts, plus the probe routes (a slow
// request among them): the child process the shutdown tests signal.
import 'reflect-metadata';
import { loadConfig } from '../../src/config';
import { startServer } from '../../src/server';
import { ProbeModule } from './probe.module';

startServer(loadConfig(process.env, { version: '0.0.0-test' }), {
  imports: [ProbeModule],
  installSignalHandlers: true,
}).catch((error: unknown) => {
  process.stderr.write(`${String(error)}\n`);
  process.exit(1);
});
