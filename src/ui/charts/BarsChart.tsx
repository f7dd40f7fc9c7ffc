import {
  Bar,
  BarChart,
  CartesianGrid,
  Legend,
  ReferenceLine,
  ResponsiveContainer,
  Tooltip,
  XAxis,
  YAxis,
} from 'recharts';

/** Histogram-style bars over category labels, with an optional labelled reference line. */
export function BarsChart({
  data,
  bars,
  xKey,
  xLabel,
  yLabel,
  reference,
  height = 220,
  testId,
  ariaLabel,
}: {
  data: Record<string, string | number>[];
  bars: { key: string; name: string; color: string }[];
  xKey: string;
  xLabel: string;
  yLabel: string;
  reference?: { x: string; label: string };
  height?: number;
  testId?: string;
  ariaLabel: string;
}) {
  return (
    <figure className="chart" data-testid={testId} aria-label={ariaLabel}>
      <ResponsiveContainer width="100%" height={height}>
        <BarChart data={data} margin={{ top: 8, right: 16, bottom: 24, left: 8 }}>
          <CartesianGrid strokeDasharray="3 3" opacity={0.4} />
          <XAxis dataKey={xKey} label={{ value: xLabel, position: 'insideBottom', offset: -12 }} />
          <YAxis allowDecimals={false} label={{ value: yLabel, angle: -90, position: 'insideLeft' }} />
          <Tooltip />
          {bars.length > 1 && <Legend verticalAlign="top" />}
          {reference && (
            <ReferenceLine
              x={reference.x}
              stroke="#b8860b"
              strokeDasharray="4 3"
              label={{ value: reference.label, position: 'insideTopRight', fontSize: 11 }}
            />
          )}
          {bars.map((b) => (
            <Bar key={b.key} dataKey={b.key} name={b.name} fill={b.color} isAnimationActive={false} />
          ))}
        </BarChart>
      </ResponsiveContainer>
    </figure>
  );
}
