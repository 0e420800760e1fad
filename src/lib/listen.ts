import type { Server } from 'node:net';
import { ErrorCode, vmeshError } from './errors.js';

/** Binds a server (net, http or https) and resolves with the port it got; port 0 picks a free one. */
export function listenOn(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(vmeshError(ErrorCode.Unavailable, `cannot listen on ${host}:${port}: ${e.code ?? e.message}`)),
    );
    server.listen(port, host, () => {
      const a = server.address();
      resolve(typeof a === 'object' && a ? a.port : port);
    });
  });
}
