import 'reflect-metadata';
import { readVersion } from '../config/version';
import { runCli } from './cli';

// The admin CLI: `npm run cli -- --help` in development, `node dist/apps/api/apps/api/src/cli/main.js` in an
// image. Exit status: 0 done, 1 refused or failed, 2 usage, 3 configuration or database unavailable.
void runCli(process.argv.slice(2), {
  env: process.env,
  version: readVersion(__dirname),
  io: {
    out: (text) => void process.stdout.write(text),
    err: (text) => void process.stderr.write(text),
  },
}).then((code) => {
  // exitCode, not exit(): stdout may still be flushing into a pipe, and every handle is already closed.
  process.exitCode = code;
});
