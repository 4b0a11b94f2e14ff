/**
 * The GPU collector's Worker thread: it owns NVML. NVML calls are synchronous and a sick driver can
 * block in them for seconds, so they never run on the main event loop; requests are answered one at a
 * time, in order.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { CollectionError } from '../gpu-collector';
import { loadNvml } from './nvml-library';
import type { FromNvmlWorker, NvmlWorkerInit, ToNvmlWorker } from './nvml-protocol';
import { NvmlReader } from './nvml-reader';

const port = parentPort;
if (port === null) throw new Error('nvml-worker must run in a Worker thread');
const send = (message: FromNvmlWorker): void => port.postMessage(message);

let reader: NvmlReader | undefined;
try {
  reader = NvmlReader.open(loadNvml((workerData as NvmlWorkerInit).libraryPath));
  send({ type: 'ready', system: reader.system });
} catch (error) {
  send({ type: 'init_failed', message: (error as Error).message });
  port.close();
}

port.on('message', (message: ToNvmlWorker) => {
  if (reader === undefined) return;
  if (message.type === 'close') {
    reader.close();
    send({ type: 'closed' });
    port.close();
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
