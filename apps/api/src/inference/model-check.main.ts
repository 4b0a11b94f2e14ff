import { runModelCheck } from './model-check';

// `npm run models:check -- models/<id>`: exit status 0 valid, 1 invalid, 2 usage (see model-check.ts).
void runModelCheck(process.argv.slice(2), {
  env: process.env,
  cwd: process.cwd(),
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
}).then((code) => {
  // exitCode, not exit(): stdout may still be flushing into a pipe.
  process.exitCode = code;
});
