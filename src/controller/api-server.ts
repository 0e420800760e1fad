import { createApiServer } from '../lib/http-api.js';
import type { Component } from '../lib/lifecycle.js';
import { listenOn } from '../lib/listen.js';
import type { Logger } from '../lib/logger.js';
import { type ApiDeps, apiRoutes } from './services/api-routes.js';
import { uiRoutes } from './services/ui-routes.js';
import type { ServingCertificates } from './serving-certs.js';

/** The HTTPS API and UI (15014) as a component: listening on start, closed with its connections on stop. */
export function apiServer(d: {
  readonly address: string;
  readonly port: number;
  readonly adminToken: string;
  readonly serving: ServingCertificates;
  readonly deps: ApiDeps;
  readonly logger: Logger;
}): Component & { readonly port: number } {
  const api = createApiServer({
    key: d.serving.current.keyPem,
    cert: d.serving.current.chainPem,
    adminToken: d.adminToken,
    routes: [...uiRoutes(), ...apiRoutes(d.deps)],
    logger: d.logger,
  });
  d.serving.onChange((next) => api.setSecureContext({ key: next.keyPem, cert: next.chainPem }));
  let port = 0;
  return {
    name: 'api',
    get port() {
      return port;
    },
    async start() {
      port = await listenOn(api, d.address, d.port);
    },
    stop() {
      const closed = new Promise<void>((r) => api.close(() => r()));
      api.closeAllConnections();
      return closed;
    },
  };
}
