import type { CommandModule } from 'yargs';
import { ErrorCode, vmeshError } from '../../lib/errors.js';
import { apiFlags, cliConfig } from '../api.js';

/**
 * The token rides in the URL fragment, which browsers never send to a server nor log in its access log; the
 * page moves it to the tab's session storage and clears it from the address bar.
 */
export function uiUrl(controllerUrl: string, token: string): string {
  return `${new URL('/ui/', controllerUrl).href}#token=${encodeURIComponent(token)}`;
}

export const uiCommand: CommandModule = {
  command: 'ui',
  describe: "print the URL of the controller's mesh UI (traffic graph, hosts, config), the admin token in its fragment",
  builder: (y) => apiFlags(y) as never,
  handler: (argv) => {
    const cfg = cliConfig(argv as Record<string, unknown>);
    if (!cfg.token) throw vmeshError(ErrorCode.Usage, 'ui: no admin token (--token-file, VMESH_TOKEN or <data-dir>/admin-token)');
    process.stdout.write(`${uiUrl(cfg.controllerUrl, cfg.token)}\n`);
    process.stderr.write('The URL carries the admin token: open it in your browser, do not share it.\n');
  },
};
