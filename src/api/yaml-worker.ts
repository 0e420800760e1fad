import { parentPort } from 'node:worker_threads';
import { splitDocuments } from './resource-parse.js';

/** The YAML reader's thread (see splitDocumentsAsync): one request at a time, answered in order. */
parentPort?.on('message', (m: { id: number; text: string; source: string }) => {
  parentPort?.postMessage({ id: m.id, result: splitDocuments(m.text, m.source) });
});
