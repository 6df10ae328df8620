// The benchmark helpers whose mistakes would bias a measurement silently.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { balancedOrders, quartiles } from './stats.js';

describe('balancedOrders', () => {
  it('puts each variant in each position, and after each other variant, equally often', () => {
    for (let n = 1; n <= 9; n++) {
      const orders = balancedOrders(n);
      assert.equal(orders.length, n % 2 === 0 ? n : 2 * n);
      const positions = new Map<string, number>();
      const follows = new Map<string, number>();
      for (const order of orders) {
        assert.deepEqual([...order].sort((a, b) => a - b), Array.from({ length: n }, (_, i) => i), `a permutation: ${order}`);
        order.forEach((v, i) => {
          positions.set(`${v}@${i}`, (positions.get(`${v}@${i}`) ?? 0) + 1);
          if (i > 0) follows.set(`${order[i - 1]}>${v}`, (follows.get(`${order[i - 1]}>${v}`) ?? 0) + 1);
        });
      }
      assert.equal(positions.size, n * n, `n=${n}: every variant in every position`);
      assert.equal(new Set(positions.values()).size, 1, `n=${n}: positions equally often`);
      if (n > 1) {
        assert.equal(follows.size, n * (n - 1), `n=${n}: every variant after every other`);
        assert.equal(new Set(follows.values()).size, 1, `n=${n}: successions equally often`);
      }
    }
  });
});

describe('quartiles', () => {
  it('interpolates between the ranks', () => {
    assert.deepEqual(quartiles([4, 1, 3, 2, 5]), [2, 3, 4]);
    assert.deepEqual(quartiles([1, 2, 3, 4]), [1.75, 2.5, 3.25]);
  });
});
