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
  /** Device class: from options.device, else guessed from the browser. */
  device?: Device;
  /** navigator.connection.effectiveType when the browser has it. */
  connection?: Connection;
  /** With options.attribution: the few fields that explain the value. */
  attribution?: Attribution;
}

export type Device = 'mobile' | 'tablet' | 'desktop';
export type Connection = '4g' | '3g' | '2g' | 'slow-2g';

/** What web-vitals' attribution build says about a value (INP, LCP, CLS). */
export interface Attribution {
  target?: string;
  interactionType?: string;
  inputDelay?: number;
  processingDuration?: number;
  presentationDelay?: number;
  scriptURL?: string;
  url?: string;
  timeToFirstByte?: number;
  resourceLoadDelay?: number;
  resourceLoadDuration?: number;
  elementRenderDelay?: number;
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
  /** Use web-vitals' attribution build and send its explaining fields (default false). */
  attribution?: boolean;
  /** Follow soft navigations (web-vitals builds that report them; default false). */
  softNavigations?: boolean;
  /** path => template for soft navigations' navigationURL ('/products/42' -> '/products/:id'). */
  route?: (path: string, metric: Metric) => string | undefined;
  /** The device class when the app knows better than the guess. */
  device?: Device;
}

export interface Reporter {
  /** False when this page view was sampled out of Web Vitals reporting. */
  sampled: boolean;
  /** Send what is queued now (e.g. before a soft navigation). */
  flush(): void;
  /** Resolves once the web-vitals observers are registered (the attribution build loaded). */
  ready: Promise<void>;
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
export const DEVICES: readonly Device[];
export const CONNECTIONS: readonly Connection[];
export function deviceClass(override?: string): Device | undefined;
export function connectionType(): Connection | undefined;
export function pageFor(
  metric: Metric, page: VitalsOptions['page'], route?: VitalsOptions['route'],
): string;
export function attributionOf(metric: Metric): Attribution | undefined;
export function withContext(
  beacon: VitalItem, metric: Metric, options?: Pick<VitalsOptions, 'device' | 'attribution'>,
): VitalItem;
export function toBodies(items: readonly object[], maxBytes?: number): string[];
export function operationsEndpointOf(endpoint: string): string;
export function applyBeforeSend<T extends object>(
  items: readonly T[],
  beforeSend: VitalsOptions['beforeSend'] | undefined,
  kind: BeaconKind,
): T[];
