import { z } from 'zod';
import { parseTagExpression } from '../tag-expression.js';
import type { Checker } from './checker.js';
import { quote } from './names.js';
import { bool, type DeepReadonly, duration, matchLabelsSelector, notImplemented, num, oneOf, str } from './schema-helpers.js';

const providers = z.array(z.strictObject({ name: str }));
const workloadMode = z.strictObject({ mode: z.enum(['CLIENT_AND_SERVER', 'CLIENT', 'SERVER']).default('CLIENT_AND_SERVER') });

const customTag = z
  .strictObject({
    literal: z.strictObject({ value: str }).optional(),
    environment: z.strictObject({ name: str, defaultValue: str.optional() }).optional(),
    header: z.strictObject({ name: str, defaultValue: str.optional() }).optional(),
  })
  .superRefine(oneOf(['literal', 'environment', 'header'], { required: true }));

const METRICS = [
  'ALL_METRICS',
  'REQUEST_COUNT',
  'REQUEST_DURATION',
  'REQUEST_SIZE',
  'RESPONSE_SIZE',
  'TCP_OPENED_CONNECTIONS',
  'TCP_CLOSED_CONNECTIONS',
  'TCP_SENT_BYTES',
  'TCP_RECEIVED_BYTES',
  'GRPC_REQUEST_MESSAGES',
  'GRPC_RESPONSE_MESSAGES',
] as const;

const metricsOverride = z.strictObject({
  match: z
    .strictObject({
      metric: z.enum(METRICS).optional(),
      customMetric: str.optional(),
      mode: z.enum(['CLIENT_AND_SERVER', 'CLIENT', 'SERVER']).optional(),
    })
    .superRefine(oneOf(['metric', 'customMetric'], { required: false }))
    .optional(),
  disabled: bool.optional(),
  tagOverrides: z
    .record(z.string(), z.strictObject({ operation: z.enum(['UPSERT', 'REMOVE']).default('UPSERT'), value: str.optional() }))
    .optional(),
});

export const telemetrySpec = z.strictObject({
  selector: matchLabelsSelector.optional(),
  targetRef: notImplemented('use selector'),
  targetRefs: notImplemented('use selector'),
  accessLogging: z
    .array(
      z.strictObject({
        match: workloadMode.optional(),
        providers: providers.optional(),
        disabled: bool.optional(),
        /** A CEL expression over request/connection attributes, as in Istio. */
        filter: z.strictObject({ expression: str }).optional(),
      }),
    )
    .optional(),
  tracing: z
    .array(
      z.strictObject({
        match: workloadMode.optional(),
        providers: providers.optional(),
        customTags: z.record(z.string(), customTag).optional(),
        disableSpanReporting: bool.optional(),
        randomSamplingPercentage: num.optional(),
        useRequestIdForTraceSampling: bool.optional(),
        enableIstioTags: notImplemented(),
      }),
    )
    .optional(),
  metrics: z
    .array(
      z.strictObject({
        providers: providers.optional(),
        overrides: z.array(metricsOverride).optional(),
        reportingInterval: duration().optional(),
      }),
    )
    .optional(),
});

export type TelemetrySpec = DeepReadonly<z.output<typeof telemetrySpec>>;

function checkProviders(path: string, list: readonly { readonly name: string }[] | undefined, c: Checker): void {
  list?.forEach((p, i) => {
    if (p.name === '') c.report(`${path}[${i}].name`, 'provider name must not be empty');
  });
}

type MetricsOverride = NonNullable<NonNullable<TelemetrySpec['metrics']>[number]['overrides']>[number];

/** Prometheus label names (what a tag becomes); `__` names are Prometheus's own. */
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function checkOverride(op: string, o: MetricsOverride, c: Checker): void {
  const custom = o.match?.customMetric;
  if (custom === '') c.report(`${op}.match.customMetric`, 'must not be empty');
  else if (custom !== undefined)
    // istioctl accepts a custom metric name; only a mesh that defines the metric (Istio's stats plugin config) acts on it.
    c.warn(
      `${op}.match.customMetric`,
      `custom metric ${quote(custom)} has no effect: vmesh defines no custom metrics, only Istio's standard ones (match them with match.metric)`,
    );
  for (const [tag, t] of Object.entries(o.tagOverrides ?? {})) {
    const tp = `${op}.tagOverrides[${JSON.stringify(tag)}]`;
    if (!LABEL_NAME.test(tag) || tag.startsWith('__'))
      c.unsupported(tp, `tag ${quote(tag)} is not a Prometheus label name, and vmesh does not rewrite tag names`);
    if (t.operation === 'UPSERT' && !t.value) c.report(tp, `tag ${quote(tag)}: UPSERT needs a value`);
    if (t.operation === 'REMOVE' && t.value !== undefined) c.report(tp, `tag ${quote(tag)}: REMOVE takes no value`);
    if (t.operation === 'UPSERT' && t.value) {
      const r = parseTagExpression(t.value);
      if (!r.ok)
        c.unsupported(
          `${tp}.value`,
          `expression ${quote(t.value)} is not implemented by vmesh (${r.reason}); it takes attributes such as request.method or request.headers['x-name'], string and integer literals, and a | b defaults`,
        );
      else {
        const undeclared = r.expr.find((x) => x.kind === 'undeclared');
        if (undeclared)
          c.warn(
            `${tp}.value`,
            `${quote(undeclared.name)} is not an attribute, so it never has a value and the tag reads "unknown" where nothing else in ${quote(t.value)} does (quote it for a literal: '${undeclared.name}')`,
          );
      }
    }
  }
}

export function checkTelemetry(spec: TelemetrySpec, c: Checker): void {
  c.labels('spec.selector.matchLabels', spec.selector?.matchLabels);
  spec.accessLogging?.forEach((a, i) => {
    const p = `spec.accessLogging[${i}]`;
    checkProviders(`${p}.providers`, a.providers, c);
    a.providers?.forEach((pr, j) => {
      // The proxy writes access logs itself, through Istio's built-in `envoy` provider (JSON/text lines). Istio
      // accepts a provider name its mesh config does not define and logs nothing for it: so does vmesh, saying so.
      if (pr.name !== '' && pr.name !== 'envoy')
        c.warn(
          `${p}.providers[${j}].name`,
          `access log provider ${quote(pr.name)} is not one vmesh has, so this entry logs nothing (vmesh's proxy writes access logs through the built-in "envoy" provider)`,
        );
    });
    const expr = a.filter?.expression;
    if (expr === '') c.report(`${p}.filter.expression`, 'must not be empty');
    else if (expr !== undefined && !/^\s*(response\.code\s*(>=|>|<=|<|==)\s*\d+|true|false)\s*$/.test(expr)) {
      c.unsupported(
        `${p}.filter.expression`,
        `filter ${quote(expr)} is not implemented by vmesh (only "response.code <op> N", true or false)`,
      );
    }
  });
  spec.tracing?.forEach((t, i) => {
    const p = `spec.tracing[${i}]`;
    checkProviders(`${p}.providers`, t.providers, c);
    // Tracing providers are the mesh config's extensionProviders, as in Istio, which accepts a name it does not
    // know (yet) and reports no spans for it: a warning. The proxy reports to one provider at a time.
    t.providers?.forEach((pr, j) => {
      if (pr.name !== '' && !c.mesh.extensionProviders.some((x) => x.name === pr.name))
        c.warn(
          `${p}.providers[${j}].name`,
          `tracing provider ${quote(pr.name)} is not one of the mesh config's extensionProviders, so no spans are reported (set them in the mesh: section of the controller's --config file; vmesh config validate and analyze read it with --mesh-config)`,
        );
    });
    if ((t.providers?.length ?? 0) > 1) c.unsupported(`${p}.providers`, 'vmesh reports spans to one tracing provider at a time');
    c.percentage(`${p}.randomSamplingPercentage`, t.randomSamplingPercentage, 'randomSamplingPercentage');
    for (const [name, tag] of Object.entries(t.customTags ?? {})) {
      const tp = `${p}.customTags[${JSON.stringify(name)}]`;
      if (name === '') c.report(tp, 'tag name must not be empty');
      if (tag.literal?.value === '') c.report(`${tp}.literal.value`, 'must not be empty');
      if (tag.environment?.name === '') c.report(`${tp}.environment.name`, 'must not be empty');
      if (tag.header?.name === '') c.report(`${tp}.header.name`, 'must not be empty');
    }
  });
  spec.metrics?.forEach((m, i) => {
    const p = `spec.metrics[${i}]`;
    checkProviders(`${p}.providers`, m.providers, c);
    m.providers?.forEach((pr, j) => {
      // Every agent serves Istio's standard metrics on :15020 for Prometheus to scrape; there is no other sink.
      if (pr.name !== '' && pr.name !== 'prometheus')
        c.unsupported(`${p}.providers[${j}].name`, `metrics provider ${quote(pr.name)} is not implemented by vmesh (use "prometheus")`);
    });
    if (m.reportingInterval !== undefined)
      // In Istio it paces pushes to OpenTelemetry/Stackdriver and TCP stats flushes; Prometheus pulls whenever it scrapes.
      c.warn(`${p}.reportingInterval`, 'has no effect in vmesh: Prometheus scrapes the agent whenever it wants, nothing is pushed');
    m.overrides?.forEach((o, j) => {
      checkOverride(`${p}.overrides[${j}]`, o, c);
    });
  });
}
