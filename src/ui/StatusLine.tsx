import { useLab } from './store.ts';
import type { AdapterSummary } from '../worker/protocol.ts';

const MiB = 1024 * 1024;
const formatLimit = (bytes: number) =>
  bytes >= MiB ? `${Math.round(bytes / MiB)} MiB` : `${Math.round(bytes / 1024)} KiB`;

function adapterName(adapter: AdapterSummary): string {
  const parts = [adapter.vendor, adapter.architecture, adapter.device, adapter.description].filter(Boolean);
  return [...new Set(parts)].join(' · ') || 'unnamed adapter';
}

function Feature({ name, on }: { name: string; on: boolean }) {
  return (
    <span
      className={on ? 'feature on' : 'feature off'}
      title={on ? `${name}: available` : `${name}: not available`}
    >
      {on ? '✓' : '✗'} {name}
    </span>
  );
}

/** The adapter the engine runs on, its features and limits, or what to do without WebGPU. */
export function StatusLine() {
  const gpu = useLab((s) => s.gpu);
  const probeGpu = useLab((s) => s.probeGpu);

  if (gpu.state === 'probing') {
    return (
      <div className="status" role="status" data-testid="adapter-line" aria-busy="true">
        Looking for a WebGPU adapter…
      </div>
    );
  }
  if (gpu.state === 'unavailable') {
    return (
      <div className="status error" role="alert" data-testid="adapter-line" data-state="unavailable">
        <strong>No WebGPU.</strong> {gpu.error.message} <span className="hint">{gpu.error.hint}</span>{' '}
        <button type="button" onClick={() => void probeGpu()}>
          Try again
        </button>
      </div>
    );
  }
  const { adapter, selftest, selftestError } = gpu;
  return (
    <div className="status" role="status" data-testid="adapter-line" data-state="ready">
      <span className="adapter-name" data-testid="adapter-name">
        WebGPU: {adapterName(adapter)}
        {adapter.isFallbackAdapter ? ' (software fallback)' : ''}
      </span>
      <Feature name="shader-f16" on={adapter.features.shaderF16} />
      <Feature name="subgroups" on={adapter.features.subgroups} />
      <Feature name="timestamp-query" on={adapter.features.timestampQuery} />
      <span className="limits">
        storage binding {formatLimit(adapter.limits.maxStorageBufferBindingSize)} · buffer{' '}
        {formatLimit(adapter.limits.maxBufferSize)} · workgroup memory{' '}
        {formatLimit(adapter.limits.maxComputeWorkgroupStorageSize)}
      </span>
      <span
        className="kernels"
        data-testid="kernels"
        title="The kernel set matmul and linear use; ?kernels=cpu|gpu in the URL overrides it"
      >
        kernels: {adapter.kernels} ({adapter.kernelsDefault ? 'default' : `?kernels=${adapter.kernels}`})
      </span>
      <span className="selftest" data-testid="selftest">
        {selftest
          ? `kernel check ${selftest.ok ? 'passed' : 'FAILED'}: ${selftest.kernel}, max rel. error ${selftest.maxRelError.toExponential(1)}, ${selftest.ms.toFixed(1)} ms`
          : selftestError
            ? `kernel check failed: ${selftestError.message}`
            : 'kernel check running…'}
      </span>
    </div>
  );
}
