/**
 * The GPU collector's child process: it owns NVML. NVML calls are synchronous and a sick driver can block
 * in them for seconds or for good, so they never run in the API's process: its event loop never waits on
 * the driver, and a collector stuck in the driver can still be killed (a thread blocked in a native call
 * cannot be stopped, and would hold the API's exit). Requests are answered one at a time, in order.
 * Started with the library path as its one argument.
 */
import { CollectionError } from '../gpu-collector';
import { loadNvml } from './nvml-library';
import type { FromNvmlProcess, ToNvmlProcess } from './nvml-protocol';
import { NvmlReader } from './nvml-reader';

if (process.send === undefined) throw new Error('nvml-process must be started with an IPC channel');
const send = (message: FromNvmlProcess): void => {
  process.send?.(message);
};
// The API went away: so does its collector.
process.on('disconnect', () => process.exit(0));

let reader: NvmlReader | undefined;
try {
  reader = NvmlReader.open(loadNvml(process.argv[2] ?? 'libnvidia-ml.so.1'));
  send({ type: 'ready', system: reader.system });
} catch (error) {
  send({ type: 'init_failed', message: (error as Error).message });
  process.disconnect();
}

process.on('message', (message: ToNvmlProcess) => {
  if (reader === undefined) return;
  if (message.type === 'close') {
    reader.close();
    send({ type: 'closed' });
    process.disconnect();
    return;
  }
  try {
    if (message.type === 'collect') {
      send({ type: 'snapshot', id: message.id, snapshot: reader.snapshot(new Set(message.skip)) });
    } else {
      send({ type: 'process_memory', id: message.id, memory: reader.processMemory(message.pid) });
    }
  } catch (error) {
    const reason = error instanceof CollectionError ? error.reason : 'nvml_error';
    send({ type: 'failed', id: message.id, reason, message: (error as Error).message });
  }
});
