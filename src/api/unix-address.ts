/**
 * Istio's unix domain socket endpoints: an endpoint address `unix:///run/app.sock` (a path) or `unix://@name`
 * (Linux's abstract namespace). Envoy spells the socket as a Pipe path: `/run/app.sock` or `@name`.
 */
export const UNIX_ADDRESS_PREFIX = 'unix://';

/** sun_path is 108 bytes: a path needs its NUL terminator, an abstract name its leading NUL. */
const MAX_SOCKET_PATH_BYTES = 107;

/** The socket path (Envoy's Pipe spelling) of a `unix://` address; undefined for any other address. */
export function unixSocketPath(address: string): string | undefined {
  return address.startsWith(UNIX_ADDRESS_PREFIX) ? address.slice(UNIX_ADDRESS_PREFIX.length) : undefined;
}

export function isUnixAddress(address: string): boolean {
  return address.startsWith(UNIX_ADDRESS_PREFIX);
}

/** Istio's ValidateUnixAddress (non-empty; `@name`, or an absolute path not ending in "/"), plus the kernel's length limit. */
export function unixPathProblem(path: string): string | undefined {
  if (path === '') return 'unix address must not be empty';
  const name = path.startsWith('@') ? path.slice(1) : path;
  if (!path.startsWith('@') && (!path.startsWith('/') || path.endsWith('/')))
    return `${JSON.stringify(path)} is not an absolute path to a file`;
  if (Buffer.byteLength(name) > MAX_SOCKET_PATH_BYTES)
    return `${JSON.stringify(path)} is longer than ${MAX_SOCKET_PATH_BYTES} bytes (a socket's sun_path)`;
  return undefined;
}
