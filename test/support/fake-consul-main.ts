/**
 * The fake Consul as a process, for lab tests whose controllers run in other network namespaces:
 * `node --import tsx fake-consul-main.ts HOST PORT` prints `listening <url>` and serves until SIGTERM.
 */
import { startFakeConsul } from './fake-consul.js';

const [host, port] = process.argv.slice(2);
const consul = await startFakeConsul({ host: host ?? '127.0.0.1', port: Number(port ?? 8500), consulService: false });
console.log(`listening ${consul.url}`);
const stop = () => void consul.stop().then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
