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

export interface CurveSeries {
  /** Legend text, e.g. "valid · step 120 · AUC 0.912". */
  name: string;
  points: { x: number; y: number }[];
  color: string;
  dashed?: boolean;
}

export const SERIES_COLORS = [
  '#1f77b4',
  '#d62728',
  '#2ca02c',
  '#9467bd',
  '#ff7f0e',
  '#17becf',
  '#8c564b',
  '#e377c2',
];

/**
 * ROC or PR curves on the unit square. ROC draws the chance diagonal; `kind` picks the axis titles.
 * Curves are step-free polylines through the curve points, as scikit-learn plots them.
 */
export function CurveChart({
  kind,
  series,
  height = 320,
  testId,
}: {
  kind: 'roc' | 'pr';
  series: CurveSeries[];
  height?: number;
  testId?: string;
}) {
  const xLabel = kind === 'roc' ? 'false-positive rate' : 'recall';
  const yLabel = kind === 'roc' ? 'true-positive rate' : 'precision';
  return (
    <figure
      className="chart"
      data-testid={testId}
      aria-label={`${kind === 'roc' ? 'ROC' : 'Precision-recall'} curves`}
    >
      <ResponsiveContainer width="100%" height={height}>
        <LineChart margin={{ top: 8, right: 16, bottom: 28, left: 8 }}>
          <CartesianGrid strokeDasharray="3 3" opacity={0.4} />
          <XAxis
            type="number"
            dataKey="x"
            domain={[0, 1]}
            ticks={[0, 0.2, 0.4, 0.6, 0.8, 1]}
            label={{ value: xLabel, position: 'insideBottom', offset: -16 }}
          />
          <YAxis
            type="number"
            dataKey="y"
            domain={[0, 1]}
            ticks={[0, 0.2, 0.4, 0.6, 0.8, 1]}
            label={{ value: yLabel, angle: -90, position: 'insideLeft' }}
          />
          {kind === 'roc' && (
            <ReferenceLine
              segment={[
                { x: 0, y: 0 },
                { x: 1, y: 1 },
              ]}
              stroke="#888"
              strokeDasharray="4 4"
            />
          )}
          <Tooltip
            formatter={(value) => Number(value).toFixed(3)}
            labelFormatter={(x) => `${xLabel} ${Number(x).toFixed(3)}`}
          />
          <Legend verticalAlign="top" />
          {series.map((s) => (
            <Line
              key={s.name}
              data={s.points}
              dataKey="y"
              name={s.name}
              stroke={s.color}
              strokeDasharray={s.dashed ? '6 3' : undefined}
              dot={false}
              isAnimationActive={false}
              strokeWidth={2}
            />
          ))}
        </LineChart>
      </ResponsiveContainer>
    </figure>
  );
}
