import { z } from 'zod';
import type { Checker } from './checker.js';
import { checkLength, checkMatchLabelsSelector } from './extensions-wasm-plugin.js';
import { type DeepReadonly, int, matchLabelsSelector, stringMap } from './schema-helpers.js';

/**
 * ProxyConfig (networking.istio.io/v1beta1), validated as Istio validates it. Istio reads it in two places
 * only, both Kubernetes: the sidecar injector (when it writes a pod's proxy container) and the gateway
 * deployment controller. A proxy on a VM (istio-agent with WorkloadEntry/WorkloadGroup) never sees it: its
 * settings come from its own mesh config and environment. vmesh is VMs only, so it accepts the resource as
 * Istio does and changes nothing, and says where the same settings live in vmesh.
 */
export const proxyConfigSpec = z.strictObject({
  selector: matchLabelsSelector.optional(),
  concurrency: int.nullable().optional(),
  environmentVariables: stringMap.optional(),
  image: z.strictObject({ imageType: z.string().optional() }).optional(),
});

export type ProxyConfigSpec = DeepReadonly<z.output<typeof proxyConfigSpec>>;

export function checkProxyConfig(spec: ProxyConfigSpec, c: Checker): void {
  checkMatchLabelsSelector(c, spec.selector);
  if (spec.concurrency != null && spec.concurrency < 0) c.report('spec.concurrency', 'concurrency must be greater than or equal to 0');
  for (const [k, v] of Object.entries(spec.environmentVariables ?? {}))
    checkLength(c, `spec.environmentVariables[${JSON.stringify(k)}]`, v, 2048);
  if (c.findings.some((f) => !f.warning)) return;
  const set = (['concurrency', 'environmentVariables', 'image'] as const).filter((k) => spec[k] != null);
  if (set.length === 0) return;
  const instead = [
    ...(set.includes('concurrency')
      ? ['the proxy worker count is the agent\'s --proxy-workers flag (VMESH_PROXY_WORKERS, "proxy.workers" in its config file)']
      : []),
    ...(set.includes('environmentVariables') ? ["the proxy's environment is the agent's (its systemd unit)"] : []),
    ...(set.includes('image') ? ['vmesh runs no proxy image'] : []),
  ];
  c.notImplemented(
    `spec.${set[0]}`,
    `has no effect: Istio applies ProxyConfig only when it injects a Kubernetes pod or deploys a gateway, never to a proxy on a VM, and vmesh does the same; ${instead.join('; ')}`,
  );
}
