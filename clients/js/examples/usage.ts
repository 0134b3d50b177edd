// A typed usage example: `tsc --noEmit` compiles it against index.d.ts (tests/client/test_js_package.py).
import { initVitals, reportOperation, type OperationItem, type Reporter } from 'metricsd-web-vitals';

const reporter: Reporter = initVitals({
  endpoint: 'https://metricsd.example.com/v1/beacons/vitals',
  page: (metric) => (metric.name === 'CLS' ? '/products/:id' : location.pathname),
  sampleRate: 0.5,
  service: 'shop-web',
  beforeSend(item, kind) {
    if (kind === 'operations' && (item as OperationItem).operation.startsWith('debug.')) {
      return null; // drop
    }
    return item;
  },
});

const started = performance.now();
const ok: boolean = reporter.reportOperation('ws.delivery', performance.now() - started, 'ok');
reportOperation('export.csv', 1234, 'timeout');
if (!ok) reporter.flush();
