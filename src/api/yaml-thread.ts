import { extname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { ErrorCode, vmeshError } from '../lib/errors.js';
import { Limits } from '../lib/limits.js';
import type { SplitResult } from './resource-parse.js';

/**
 * splitDocuments on a thread of its own, for the controller. The yaml package reads ~1 MB/s of real config and
 * far less of hostile input (1 MiB of flow indicators took 6 s), and composes a whole document in one call:
 * on the main thread one config apply stalled xDS, the CA and health reports for seconds. The thread also has
 * its own heap and stack ceilings (an input that exhausts them ends the thread, not the controller) and a
 * deadline; it is restarted for the next request.
 */

interface Pending {
  resolve(r: SplitResult): void;
  reject(e: unknown): void;
  timer: NodeJS.Timeout;
}

let worker: Worker | undefined;
let nextId = 1;
const pending = new Map<number, Pending>();

function entry(): { worker: string | URL; eval: boolean } {
  const here = fileURLToPath(import.meta.url);
  const ext = extname(here);
  const file = pathToFileURL(`${here.slice(0, -ext.length).replace(/yaml-thread$/, 'yaml-worker')}${ext}`);
  if (ext === '.js') return { worker: file, eval: false };
  // Running from TypeScript sources (tests, `tsx`): the thread registers tsx's loader before it loads its module.
  const tsx = import.meta.resolve('tsx/esm/api');
  return {
    worker: `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(file.href)}); })`,
    eval: true,
  };
}

function failAll(e: unknown): void {
  for (const [id, p] of pending) {
    clearTimeout(p.timer);
    pending.delete(id);
    p.reject(e);
  }
}

function thread(): Worker {
  if (worker) return worker;
  const { worker: what, eval: isEval } = entry();
  const w = new Worker(what, {
    eval: isEval,
    resourceLimits: { maxOldGenerationSizeMb: Limits.configParseHeapMb, stackSizeMb: 4 },
  });
  w.on('message', (m: { id: number; result: SplitResult }) => {
    const p = pending.get(m.id);
    if (!p) return;
    clearTimeout(p.timer);
    pending.delete(m.id);
    p.resolve(m.result);
  });
  const gone = (e: unknown) => {
    if (worker === w) worker = undefined;
    const why = (e as { code?: string })?.code === 'ERR_WORKER_OUT_OF_MEMORY' ? `its ${Limits.configParseHeapMb} MiB heap` : String(e);
    failAll(vmeshError(ErrorCode.LimitExceeded, `config input: reading it exhausted ${why}`));
  };
  w.on('error', gone);
  w.on('exit', (code) => gone(`exit code ${code}`));
  // After the listeners: adding a 'message' listener refs the thread again, and it must not keep a process alive.
  w.unref();
  worker = w;
  return w;
}

/** splitDocuments(text, source), computed off the event loop; VMESH_ERR_LIMIT_EXCEEDED past the heap or the deadline. */
export function splitDocumentsOffThread(text: string, source: string): Promise<SplitResult> {
  const w = thread();
  const id = nextId++;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      if (!pending.has(id)) return;
      // The thread is stuck on this input: end it (and with it whatever else it was asked), start afresh next time.
      worker = undefined;
      failAll(vmeshError(ErrorCode.LimitExceeded, `config input: not read within ${Limits.configParseMs / 1000} s (the limit)`));
      void w.terminate();
    }, Limits.configParseMs);
    pending.set(id, { resolve, reject, timer });
    w.postMessage({ id, text, source });
  });
}
