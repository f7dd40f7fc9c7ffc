import {
  CartesianGrid,
  Legend,
  Line,
  LineChart,
  ReferenceLine,
  ResponsiveContainer,
  Tooltip,
  XAxis,
  YAxis,
} from 'recharts';

export interface StepMarker {
  step: number;
  /** e.g. "lr → 3e-4". */
  label: string;
}

/**
 * Metrics over optimizer steps (loss, lr, tokens/s) with vertical markers where a setting was changed
 * mid-run, so the effect of a change can be seen at the step it took effect.
 */
export function SeriesChart({
  data,
  lines,
  markers = [],
  yLabel,
  height = 220,
  testId,
  logScale = false,
}: {
  data: Record<string, number | undefined>[];
  lines: { key: string; name: string; color: string }[];
  markers?: StepMarker[];
  yLabel: string;
  height?: number;
  testId?: string;
  logScale?: boolean;
}) {
  return (
    <figure className="chart" data-testid={testId} aria-label={yLabel}>
      <ResponsiveContainer width="100%" height={height}>
        <LineChart data={data} margin={{ top: 8, right: 16, bottom: 24, left: 8 }}>
          <CartesianGrid strokeDasharray="3 3" opacity={0.4} />
          <XAxis
            type="number"
            dataKey="step"
            domain={['dataMin', 'dataMax']}
            allowDecimals={false}
            label={{ value: 'step', position: 'insideBottom', offset: -12 }}
          />
          <YAxis
            scale={logScale ? 'log' : 'auto'}
            domain={logScale ? ['auto', 'auto'] : [0, 'auto']}
            allowDataOverflow={logScale}
            label={{ value: yLabel, angle: -90, position: 'insideLeft' }}
            tickFormatter={(v: number) =>
              Math.abs(v) < 0.01 && v !== 0 ? v.toExponential(0) : String(+v.toPrecision(3))
            }
          />
          <Tooltip />
          <Legend verticalAlign="top" />
          {markers.map((m) => (
            <ReferenceLine
              key={`${m.step}-${m.label}`}
              x={m.step}
              stroke="#b8860b"
              strokeDasharray="3 3"
              label={{ value: m.label, position: 'insideTopRight', fontSize: 11 }}
            />
          ))}
          {lines.map((l) => (
            <Line
              key={l.key}
              dataKey={l.key}
              name={l.name}
              stroke={l.color}
              dot={false}
              connectNulls
              isAnimationActive={false}
              strokeWidth={2}
            />
          ))}
        </LineChart>
      </ResponsiveContainer>
    </figure>
  );
}
