// Type declarations of metricsd-vitals.js (the module ships as plain ESM, no build step).
import type { Metric } from 'web-vitals';

/** What became of an operation; anything else is sent as 'error'. */
export type Outcome = 'ok' | 'error' | 'timeout' | 'cancelled';

/** One Web Vitals item as POST /v1/beacons/vitals takes it. */
export interface VitalItem {
  name: 'LCP' | 'INP' | 'CLS' | 'FCP' | 'TTFB';
  value: number;
  rating?: 'good' | 'needs-improvement' | 'poor';
  delta?: number;
  id?: string;
  navigationType?: string;
  page: string;
}

/** One operation as POST /v1/beacons/operations takes it. */
export interface OperationItem {
  service: string;
  operation: string;
  outcome: Outcome;
  duration_ms: number;
  /** Unix milliseconds when the operation ended. */
  timestamp?: number;
}

export type BeaconKind = 'vitals' | 'operations';

/**
 * Called with a copy of each item before it is sent: return it (edited or not) to send
 * it, or null/undefined/false to drop it. A hook that throws drops the item.
 */
export type BeforeSend = {
  (item: VitalItem, kind: 'vitals'): VitalItem | null | undefined | false;
  (item: OperationItem, kind: 'operations'): OperationItem | null | undefined | false;
};

export interface VitalsOptions {
  /** metricsd's /v1/beacons/vitals URL. */
  endpoint: string;
  /** Route template ('/products/:id') or a function of the metric; default location.pathname. */
  page?: string | ((metric: Metric) => string);
  /** Share of page views that report Web Vitals (0..1), decided once per view. */
  sampleRate?: number;
  /** Upper bound of one request body in bytes (default 60000). */
  maxBodyBytes?: number;
  /** Edit or drop items before they are sent. */
  beforeSend?: (item: VitalItem | OperationItem, kind: BeaconKind)
    => VitalItem | OperationItem | null | undefined | false;
  /** The service label of operations (default 'web'). */
  service?: string;
  /** Default: endpoint with /vitals replaced by /operations. */
  operationsEndpoint?: string;
}

export interface Reporter {
  /** False when this page view was sampled out of Web Vitals reporting. */
  sampled: boolean;
  /** Send what is queued now (e.g. before a soft navigation). */
  flush(): void;
  /** Queue one operation; false when the name or duration is invalid. */
  reportOperation(name: string, durationMs: number, outcome?: Outcome): boolean;
}

export const DEFAULT_MAX_BODY_BYTES: number;
export const OPERATIONS_BATCH: number;
export const OPERATIONS_FLUSH_MS: number;
export const OUTCOMES: readonly Outcome[];

/** Start reporting this page view's Web Vitals (and operations) to metricsd. */
export function initVitals(options: VitalsOptions): Reporter;
/** Report an operation through the reporter initVitals created last (false before it). */
export function reportOperation(name: string, durationMs: number, outcome?: Outcome): boolean;
export function toBeacon(metric: Metric, page: string): VitalItem;
export function toBodies(items: readonly object[], maxBytes?: number): string[];
export function operationsEndpointOf(endpoint: string): string;
export function applyBeforeSend<T extends object>(
  items: readonly T[],
  beforeSend: VitalsOptions['beforeSend'] | undefined,
  kind: BeaconKind,
): T[];
