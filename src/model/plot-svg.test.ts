import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isUnderstudyError } from '../errors.js';
import { availabilityChartSvg, corruptionChartSvg } from './charts.js';
import { linearTicks, logTicks, renderLineChart } from './plot-svg.js';

const count = (s: string, needle: string): number => s.split(needle).length - 1;

test('ticks: nice linear steps and decades', () => {
  assert.deepEqual(linearTicks(0, 10), [0, 2, 4, 6, 8, 10]);
  assert.deepEqual(linearTicks(98, 100, 4), [98, 98.5, 99, 99.5, 100]);
  assert.deepEqual(logTicks(0.05, 20), [0.1, 1, 10]);
  assert.deepEqual(logTicks(1, 100), [1, 2, 5, 10, 20, 50, 100]);
});

test('renderLineChart draws one path per series, a legend entry per series, and escapes text', () => {
  const svg = renderLineChart({
    title: 'P <corrupt> & co', xLabel: 'x', yLabel: 'y',
    series: [{ name: 'a', points: [[1, 1], [2, 4], [3, 9]] }, { name: 'b"', points: [[1, 2], [3, 2]], dashed: true }],
  });
  assert.ok(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"') && svg.trimEnd().endsWith('</svg>'));
  assert.equal(count(svg, '<path '), 2);
  assert.ok(svg.includes('P &lt;corrupt&gt; &amp; co') && svg.includes('>b&quot;<'));
  assert.ok(!svg.includes('NaN') && !svg.includes('Infinity'));
  // Balanced tags: every opened <text> is closed.
  assert.equal(count(svg, '<text'), count(svg, '</text>'));
});

test('log axes drop non-positive points instead of writing NaN; empty plots are refused', () => {
  const svg = renderLineChart({ title: 't', xLabel: 'x', yLabel: 'y', yScale: 'log', series: [{ name: 's', points: [[1, 0], [2, 1], [3, 10]] }] });
  assert.ok(!svg.includes('NaN'));
  assert.throws(() => renderLineChart({ title: 't', xLabel: 'x', yLabel: 'y', series: [] }), (e: unknown) => isUnderstudyError(e, 'ERR_MODEL_PARAM'));
  assert.throws(() => renderLineChart({ title: 't', xLabel: 'x', yLabel: 'y', yScale: 'log', series: [{ name: 's', points: [[1, 0]] }] }),
    (e: unknown) => isUnderstudyError(e, 'ERR_MODEL_PARAM'));
});

test('the model charts have the expected curves and no invalid numbers', () => {
  const c = corruptionChartSvg({ lambdaPerMs: 0.0599, marks: [20, 50] });
  assert.equal(count(c, '<path '), 4);
  assert.ok(c.includes('dual checkpoint (6)') && !c.includes('NaN'));
  const a = availabilityChartSvg();
  assert.equal(count(a, '<path '), 4);
  assert.ok(a.includes('no checkpointing') && a.includes('availability 99.98 %') && !a.includes('NaN'));
});
